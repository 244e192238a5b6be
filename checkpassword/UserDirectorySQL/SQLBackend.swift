// The MySQL/MariaDB backend (MariaDB Connector/C): domains, users and
// aliases in the tables of schemas/mysql.sql (names changeable through
// control/sqlnames). Every query is a prepared statement with bound
// parameters; no value is ever pasted into SQL. Passwords are checked here
// against the stored crypt(3) hash. A server that is down, slow or refuses
// us is a temporary failure; the connection is dropped and made again on
// the next call. Several servers are tried in the order listed; with
// control/sqlprimary they are read as replicas (Replicas: their "no" is
// confirmed on the primary) and every write goes to the primary.
// Configuration (HOME/control):
//   sqlserver     /path/to/socket, or host[:port] (TCP, default port 3306);
//                 one a line, tried in order
//   sqlprimary    the primary, in the same form: writes, and a replica's "no"
//   sqldatabase   the database
//   sqlpassword   line 1 user, line 2 password (mode 600)
//   sqladminpassword  the same, for vfilterpolicy's changes (else sqlpassword)
//   sqltls        none (default), required (encrypt), verify (encrypt and
//                 verify the server's certificate against sqlcacert)
//   sqlcacert     CA certificate file
//   sqltimeout    seconds for connect, read and write (default 5)
//   sqlconnecttimeout seconds for each connect (default 2 with several
//                 servers or a primary, else sqltimeout)
//   sqlnames      key=name lines renaming tables and columns
#if canImport(Glibc)
import Glibc
#endif
import CMariaDB
import QmailCore
import UserDirectory

public final class SQLBackend: ReplicatedDirectory {
    public static let defaultNames: [String: String] = [
        "domains": "domains", "domains.name": "name", "domains.real": "real_domain", "domains.dir": "dir",
        "domains.uid": "uid", "domains.gid": "gid",
        "users": "users", "users.local": "local_part", "users.domain": "domain", "users.password": "password_hash",
        "users.home": "home", "users.maildir": "maildir", "users.uid": "uid", "users.gid": "gid",
        "users.quota": "quota", "users.status": "status", "users.filterpolicy": "filter_policy",
        "users.mailhost": "mail_host", "domains.mailhost": "mail_host",
        "aliases": "aliases", "aliases.local": "local_part", "aliases.domain": "domain", "aliases.target": "target",
    ]

    public enum TLSMode: String { case none, required, verify }

    /// One server: a unix socket, or a TCP host and port.
    public struct Server: Equatable {
        /// A unix socket path, or nil for TCP.
        public var socket: String?
        public var host = "localhost"
        public var port: UInt32 = 3306

        /// "/path/to/socket", "host" or "host:port".
        public init(_ server: String) throws {
            if server.hasPrefix("/") {
                socket = server
            } else if let colon = server.lastIndex(of: ":") {
                host = String(server[..<colon])
                guard let p = UInt32(server[server.index(after: colon)...]), p > 0, p < 65536 else {
                    throw MailFailure.temporary("control/sqlserver: bad port in \(server)")
                }
                port = p
            } else {
                host = server
            }
        }

        var name: String { socket ?? "\(host):\(port)" }
    }

    public struct Config {
        /// The read servers, in the order they are tried.
        public var servers: [Server]
        /// The primary, when `servers` are its replicas.
        public var primary: Server?
        public var database: String
        public var user: String
        public var password: [UInt8]
        public var tls = TLSMode.none
        public var caCert: String?
        public var timeout = 5
        public var connectTimeout = 5
        public var names = NameMap(defaults: SQLBackend.defaultNames)

        public init(servers: [Server], database: String, user: String, password: [UInt8]) {
            self.servers = servers
            self.database = database
            self.user = user
            self.password = password
        }

        public init(server: String, database: String, user: String, password: [UInt8]) throws {
            self.init(servers: [try Server(server)], database: database, user: user, password: password)
        }

        /// `admin`: log in as control/sqladminpassword names when it exists.
        public static func load(home: QmailHome, admin: Bool = false) throws -> Config {
            let c = Control(home: home)
            var servers = try c.list("sqlserver").map { try Server($0.string) }
            guard !servers.isEmpty else { throw MailFailure.temporary("control/sqlserver is missing or empty") }
            var primary = try c.line("sqlprimary").flatMap { $0.isEmpty ? nil : try Server($0.string) }
            // Writers (and the reads their changes depend on) use the primary alone.
            if admin, let p = primary { servers = [p]; primary = nil }
            guard let db = try c.line("sqldatabase"), !db.isEmpty else {
                throw MailFailure.temporary("control/sqldatabase is missing or empty")
            }
            guard let cred = try (admin ? DirectoryLogin.read(c.path("sqladminpassword")) : nil)
                    ?? DirectoryLogin.read(c.path("sqlpassword")), !cred.name.isEmpty else {
                throw MailFailure.temporary("control/sqlpassword is missing (line 1 user, line 2 password)")
            }
            var cfg = Config(servers: servers, database: db.string, user: cred.name.string, password: cred.password)
            cfg.primary = primary
            if let t = try c.line("sqltls") {
                guard let m = TLSMode(rawValue: t.string) else { throw MailFailure.temporary("control/sqltls: want none, required or verify") }
                cfg.tls = m
            }
            cfg.caCert = try c.line("sqlcacert").map { $0.string }
            cfg.timeout = max(1, try c.number("sqltimeout", default: 5))
            let failover = servers.count > 1 || primary != nil
            cfg.connectTimeout = max(1, try c.number("sqlconnecttimeout", default: failover ? min(2, cfg.timeout) : cfg.timeout))
            try cfg.names.apply(try c.list("sqlnames"), file: "sqlnames") { ch in
                (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122) || Ascii.isDigit(ch) || ch == 95
            }
            return cfg
        }
    }

    public let home: QmailHome
    public let plainPasswordsEnabled = false
    var config: Result<Config, MailFailure>?
    var db: UnsafeMutablePointer<MYSQL>?
    /// Which of the servers `db` talks to.
    var connected = 0
    var primaryReader: SQLBackend?
    var userStatement: Statement?
    var aliasStatement: Statement?
    var policyStatement: Statement?
    var setPolicyStatement: Statement?
    var setHomeHostStatement: Statement?
    /// Said once per process: the users table has no policy column.
    var noPolicyColumnLogged = false
    /// False once the server said the mail_host columns are missing (a
    /// table from before the migration): every mailbox is then local.
    var homeHostColumns = true
    let admin: Bool
    nonisolated(unsafe) static var initialized = false

    /// `admin`: for vfilterpolicy, which writes (control/sqladminpassword).
    public init(home: QmailHome, admin: Bool = false) {
        self.home = home
        self.admin = admin
    }

    public init(home: QmailHome, config: Config) {
        self.home = home
        self.config = .success(config)
        self.admin = false
    }

    deinit { disconnect() }

    public func disconnect() {
        for st in [userStatement, aliasStatement, policyStatement, setPolicyStatement, setHomeHostStatement] { st?.close() }
        userStatement = nil
        aliasStatement = nil
        policyStatement = nil
        setPolicyStatement = nil
        setHomeHostStatement = nil
        if let d = db { mysql_close(d) }
        db = nil
    }

    func loadConfig() throws -> Config {
        try loadOnce(&config) { try Config.load(home: home, admin: admin) }
    }

    static func failure(_ what: String, _ d: UnsafeMutablePointer<MYSQL>) -> MailFailure {
        .temporary("MySQL \(what): \(String(cString: mysql_error(d)))")
    }

    /// The user query: the domain (by its own name or an alias name) and,
    /// when it has one, the user; one round trip.
    /// The login/delivery query; with `hosts`, also the home host columns
    /// (columns 12 and 13) that schemas/mysql.sql's migration adds.
    func userQuery(_ n: NameMap, hosts: Bool) -> String {
        func q(_ k: String) -> String { "`" + n[k] + "`" }
        let hostColumns = hosts ? ", d.\(q("domains.mailhost")), u.\(q("users.mailhost"))" : ""
        return "SELECT d.\(q("domains.real")), d.\(q("domains.dir")), d.\(q("domains.uid")), d.\(q("domains.gid")), "
            + "u.\(q("users.local")), u.\(q("users.password")), u.\(q("users.home")), u.\(q("users.maildir")), "
            + "u.\(q("users.uid")), u.\(q("users.gid")), u.\(q("users.quota")), u.\(q("users.status"))\(hostColumns) "
            + "FROM \(q("domains")) d LEFT JOIN \(q("users")) u ON u.\(q("users.domain")) = d.\(q("domains.real")) "
            + "AND u.\(q("users.local")) = ? WHERE d.\(q("domains.name")) = ? LIMIT 2"
    }

    func aliasQuery(_ n: NameMap) -> String {
        func q(_ k: String) -> String { "`" + n[k] + "`" }
        return "SELECT \(q("aliases.target")) FROM \(q("aliases")) WHERE \(q("aliases.domain")) = ? "
            + "AND \(q("aliases.local")) = ? LIMIT 1000"
    }

    /// The primary as a reader of its own (ReplicatedDirectory).
    public func provider() throws -> (UserBackend & RecipientDirectory)? {
        let cfg = try loadConfig()
        guard let p = cfg.primary else { return nil }
        if primaryReader == nil {
            var c = cfg
            c.servers = [p]
            c.primary = nil
            primaryReader = SQLBackend(home: home, config: c)
        }
        return primaryReader
    }

    /// The connection, made when there is none: to the first of the
    /// servers from `first` on that takes us.
    func connect(_ cfg: Config, from first: Int = 0) throws -> UnsafeMutablePointer<MYSQL> {
        if let d = db { return d }
        var failures: [String] = []
        for i in first..<max(first, cfg.servers.count) {
            do {
                db = try connect(cfg.servers[i], cfg)
                connected = i
                return db!
            } catch let f as MailFailure {
                failures.append(cfg.servers.count > 1 ? "\(cfg.servers[i].name): \(f.text)" : f.text)
            }
        }
        throw MailFailure.temporary(failures.isEmpty ? "MySQL: no server left to try" : failures.joined(separator: "; "))
    }

    func connect(_ server: Server, _ cfg: Config) throws -> UnsafeMutablePointer<MYSQL> {
        if !SQLBackend.initialized {
            _ = mysql_server_init(0, nil, nil)
            SQLBackend.initialized = true
        }
        guard let d = mysql_init(nil) else { throw MailFailure.temporary("MySQL: out of memory") }
        var ok = false
        defer { if !ok { mysql_close(d) } }
        var ct = UInt32(cfg.connectTimeout)
        _ = mysql_options(d, MYSQL_OPT_CONNECT_TIMEOUT, &ct)
        var t = UInt32(cfg.timeout)
        _ = mysql_options(d, MYSQL_OPT_READ_TIMEOUT, &t)
        _ = mysql_options(d, MYSQL_OPT_WRITE_TIMEOUT, &t)
        var off: CChar = 0
        _ = mysql_options(d, MYSQL_OPT_RECONNECT, &off)
        _ = mysql_options(d, MYSQL_OPT_LOCAL_INFILE, &off)
        _ = mysql_options(d, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        var on: CChar = 1
        if server.socket != nil {
            var proto = UInt32(MYSQL_PROTOCOL_SOCKET.rawValue)
            _ = mysql_options(d, MYSQL_OPT_PROTOCOL, &proto)
        } else {
            var proto = UInt32(MYSQL_PROTOCOL_TCP.rawValue)
            _ = mysql_options(d, MYSQL_OPT_PROTOCOL, &proto)
        }
        switch cfg.tls {
        case .none: break
        case .required:
            _ = mysql_options(d, MYSQL_OPT_SSL_ENFORCE, &on)
            _ = mysql_options(d, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &off)
        case .verify:
            _ = mysql_options(d, MYSQL_OPT_SSL_ENFORCE, &on)
            _ = mysql_options(d, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on)
        }
        if let ca = cfg.caCert { _ = mysql_options(d, MYSQL_OPT_SSL_CA, ca) }
        var pw = cfg.password + [0]
        defer { explicit_bzero(&pw, pw.count) }
        let r = pw.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { cp in
                mysql_real_connect(d, server.socket == nil ? server.host : nil, cfg.user, cp, cfg.database,
                                   server.socket == nil ? server.port : 0, server.socket, 0)
            }
        }
        guard r != nil else { throw SQLBackend.failure("connect", d) }
        ok = true
        return d
    }

    /// Runs a query on the live connection. A lost connection is made
    /// again to the same server first (a restart since the last call only
    /// shows when it is used), then to the next one.
    func run(_ which: ReferenceWritableKeyPath<SQLBackend, Statement?>, make: (NameMap) -> String, columns: Int,
             params: [[UInt8]]) throws -> [[[UInt8]?]] {
        let cfg = try loadConfig()
        var from = 0
        var retried = false
        for _ in 0...cfg.servers.count {
            let d = try connect(cfg, from: from)
            do {
                var st = self[keyPath: which]
                if st == nil {
                    st = try Statement(d, make(cfg.names), columns: columns)
                    self[keyPath: which] = st
                }
                return try st!.execute(params)
            } catch let f as MailFailure {
                let code = mysql_errno(d)
                disconnect()
                // 2006 server gone away, 2013 lost connection during query
                // (or no answer within the read timeout).
                if code == 2006 || code == 2013 {
                    from = connected + (retried ? 1 : 0)
                    retried = true
                    if from < cfg.servers.count { continue }
                }
                throw f
            }
        }
        throw MailFailure.temporary("MySQL: server unreachable")
    }

    // MARK: UserBackend / RecipientDirectory

    public func lookup(login: [UInt8]) -> LookupResult {
        switch RemoteDirectory.splitLogin(login, home: home) {
        case .failure(let f): return .temporary(f.text)
        case .success(nil): return .noSuchUser
        case .success(let p?): return RemoteDirectory.lookupResult(recipient(user: p.user, domain: p.domain, aliases: false))
        }
    }

    public func recipient(user: [UInt8], domain: [UInt8], aliases: Bool) -> FileBackend.Recipient {
        Replicas.confirm(readRecipient(user: user, domain: domain, aliases: aliases), self) {
            $0.recipient(user: user, domain: domain, aliases: aliases)
        }
    }

    /// The answer of the read servers alone.
    func readRecipient(user rawUser: [UInt8], domain rawDomain: [UInt8], aliases: Bool) -> FileBackend.Recipient {
        guard let (user, domain) = RemoteDirectory.normalize(user: rawUser, domain: rawDomain) else { return .noSuchDomain }
        // The tables hold UTF-8 only; other bytes name nobody (and would
        // only make the server complain).
        guard String(validatingUTF8: user.map { CChar(bitPattern: $0) } + [0]) != nil,
              String(validatingUTF8: domain.map { CChar(bitPattern: $0) } + [0]) != nil else { return .noSuchDomain }
        do {
            let cfg = try loadConfig()
            // Two connects per server, two queries; each read/write bounded by the timeout.
            let n = cfg.servers.count
            Watchdog.arm(seconds: 2 * n * (cfg.connectTimeout + 2 * cfg.timeout) + 2 * cfg.timeout + 1, what: "the MySQL server")
            defer { Watchdog.disarm() }
            let rows = try userRows(user, domain)
            guard let r = rows.first else { return .noSuchDomain }
            if rows.count > 1 { return .temporary("MySQL: more than one row for \(user.string)@\(domain.string)") }
            guard let real = r[0], !real.isEmpty else { return .temporary("MySQL: domain \(domain.string) has no real domain") }
            var dr = DomainRecord(name: domain, real: real.lowercasedASCII(), dir: r[1]?.string, uid: r[2], gid: r[3])
            dr.homeHost = r.count > 13 ? r[12] : nil
            let dom: VDomain
            switch RemoteDirectory.domain(dr) {
            case .success(let v): dom = v
            case .failure(let f): return .temporary(f.text)
            }
            var forwards: [[UInt8]] = []
            if aliases {
                forwards = try run(\.aliasStatement, make: aliasQuery, columns: 1, params: [dom.real, user])
                    .compactMap { $0[0] }.filter { !$0.isEmpty }
            }
            guard r[4] != nil else {
                if forwards.isEmpty { return .noSuchUser(dom) }
                var alias = AccountRecord(user: user)
                alias.forwards = forwards
                return RemoteDirectory.recipient(alias, domain: dom, aliases: true)
            }
            var a = AccountRecord(user: user)
            a.hash = r[5] ?? []
            a.home = r[6].flatMap { $0.isEmpty ? nil : $0.string }
            a.maildir = r[7].flatMap { $0.isEmpty ? nil : $0.string }
            if a.home == nil && a.maildir == nil { a.home = "" }   // a user row is a mailbox: default paths
            a.uid = r[8]
            a.gid = r[9]
            a.quota = r[10]
            a.status = r[11]
            a.homeHost = r.count > 13 ? r[13] : nil
            a.forwards = forwards
            return RemoteDirectory.recipient(a, domain: dom, aliases: aliases, moveMarks: !admin)
        } catch let f as MailFailure {
            return .temporary(f.text)
        } catch {
            return .temporary("MySQL: \(error)")
        }
    }
}

extension SQLBackend {
    /// The user query's rows, without the home host columns on a table
    /// that has none yet (said once per process on stderr).
    func userRows(_ user: [UInt8], _ domain: [UInt8]) throws -> [[[UInt8]?]] {
        if homeHostColumns {
            do {
                return try run(\.userStatement, make: { self.userQuery($0, hosts: true) }, columns: 14, params: [user, domain])
            } catch is UnknownColumn {
                homeHostColumns = false
                Sys.warn("MySQL: no mail_host columns (schemas/mysql.sql's migration); every mailbox is on this host")
            }
        }
        return try run(\.userStatement, make: { self.userQuery($0, hosts: false) }, columns: 12, params: [user, domain])
    }
}

/// A statement names a column the table does not have.
struct UnknownColumn: Error { let failure: MailFailure }

/// One prepared statement with string parameters and string results.
final class Statement {
    static let columnLimit = 4096
    let stmt: UnsafeMutablePointer<MYSQL_STMT>
    let columns: Int
    let buffers: UnsafeMutablePointer<UInt8>
    let lengths: UnsafeMutablePointer<UInt>
    let nulls: UnsafeMutablePointer<CChar>
    let results: UnsafeMutablePointer<MYSQL_BIND>

    init(_ d: UnsafeMutablePointer<MYSQL>, _ query: String, columns: Int) throws {
        guard let s = mysql_stmt_init(d) else { throw MailFailure.temporary("MySQL: out of memory") }
        let bytes = Array(query.utf8)
        if mysql_stmt_prepare(s, query, UInt(bytes.count)) != 0 {
            let why = MailFailure.temporary("MySQL prepare: \(String(cString: mysql_stmt_error(s)))")
            // 1054: no such column (a table from before a migration).
            let unknownColumn = mysql_stmt_errno(s) == 1054
            mysql_stmt_close(s)
            if unknownColumn { throw UnknownColumn(failure: why) }
            throw why
        }
        guard Int(mysql_stmt_field_count(s)) == columns else {
            mysql_stmt_close(s)
            throw MailFailure.temporary("MySQL prepare: unexpected column count")
        }
        stmt = s
        self.columns = columns
        buffers = .allocate(capacity: columns * Statement.columnLimit)
        lengths = .allocate(capacity: columns)
        nulls = .allocate(capacity: columns)
        results = .allocate(capacity: columns)
        for i in 0..<columns {
            var b = MYSQL_BIND()
            b.buffer_type = MYSQL_TYPE_STRING
            b.buffer = UnsafeMutableRawPointer(buffers + i * Statement.columnLimit)
            b.buffer_length = UInt(Statement.columnLimit)
            b.length = lengths + i
            b.is_null = nulls + i
            (results + i).initialize(to: b)
        }
    }

    func close() {
        mysql_stmt_close(stmt)
        buffers.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        results.deallocate()
    }

    func execute(_ params: [[UInt8]]) throws -> [[[UInt8]?]] {
        // Parameter buffers must live until execute returns: heap copies.
        let count = params.count
        let binds = UnsafeMutablePointer<MYSQL_BIND>.allocate(capacity: max(count, 1))
        let lens = UnsafeMutablePointer<UInt>.allocate(capacity: max(count, 1))
        var storage: [UnsafeMutablePointer<UInt8>] = []
        defer {
            for p in storage { p.deallocate() }
            binds.deallocate()
            lens.deallocate()
        }
        for (i, p) in params.enumerated() {
            let buf = UnsafeMutablePointer<UInt8>.allocate(capacity: max(p.count, 1))
            storage.append(buf)
            p.withUnsafeBufferPointer { src in if let b = src.baseAddress { buf.update(from: b, count: p.count) } }
            lens[i] = UInt(p.count)
            var b = MYSQL_BIND()
            b.buffer_type = MYSQL_TYPE_STRING
            b.buffer = UnsafeMutableRawPointer(buf)
            b.buffer_length = UInt(p.count)
            b.length = lens + i
            (binds + i).initialize(to: b)
        }
        func fail(_ what: String) -> MailFailure { .temporary("MySQL \(what): \(String(cString: mysql_stmt_error(stmt)))") }
        if mysql_stmt_bind_param(stmt, binds) != 0 { throw fail("bind") }
        if mysql_stmt_execute(stmt) != 0 { throw fail("execute") }
        if columns == 0 { return [] }   // an UPDATE: nothing to fetch
        defer { _ = mysql_stmt_free_result(stmt) }
        if mysql_stmt_bind_result(stmt, results) != 0 { throw fail("bind result") }
        if mysql_stmt_store_result(stmt) != 0 { throw fail("store result") }
        var rows: [[[UInt8]?]] = []
        while true {
            let r = mysql_stmt_fetch(stmt)
            if r == MYSQL_NO_DATA { break }
            if r == MYSQL_DATA_TRUNCATED { throw MailFailure.temporary("MySQL: a value is longer than \(Statement.columnLimit) bytes") }
            if r != 0 { throw fail("fetch") }
            var row: [[UInt8]?] = []
            for i in 0..<columns {
                if nulls[i] != 0 { row.append(nil); continue }
                row.append(Array(UnsafeBufferPointer(start: buffers + i * Statement.columnLimit, count: Int(lengths[i]))))
            }
            rows.append(row)
        }
        return rows
    }
}
