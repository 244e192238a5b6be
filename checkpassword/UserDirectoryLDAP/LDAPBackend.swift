// The LDAP backend (OpenLDAP's libldap): accounts and domains are entries of
// the schema in schemas/ (or any schema, through control/ldapfilter and
// control/ldapattributes). Every value put into a filter is escaped
// (RFC 4515, ldap_bv2escaped_filter_value). Passwords are checked here
// against the entry's {CRYPT} hash, so the user's password never goes to
// the server. A server that is down, slow or refuses our bind is a
// temporary failure; the connection is dropped and made again on the next
// call. Several servers are tried in the order listed (the first that
// connects and binds answers; one that fails or stops answering hands over
// to the next). With control/ldapprovider, the listed servers are read
// as replicas (Replicas: their "no" is confirmed there) and every write
// goes to the provider. Configuration (HOME/control):
//   ldapserver        URIs, one a line: ldap://host:port/, ldaps://host/
//   ldapprovider      the provider's URI: writes, and a replica's "no" checked
//   ldapbasedn        the search base
//   ldaptls           "starttls" to require StartTLS on ldap:// (else none)
//   ldapcacert        CA certificate file for ldaps:// and StartTLS
//   ldaptimeout       seconds for connect and each search (default 5)
//   ldapconnecttimeout seconds for each connect (default 2 with several
//                     servers or a provider, else ldaptimeout)
//   ldappassword      line 1 bind DN, line 2 password (mode 600; none: anonymous)
//   ldapadminpassword the same, for vfilterpolicy's changes (else ldappassword)
//   ldapfilter        account filter, %s = the escaped address
//   ldapdomainfilter  domain filter, %s = the escaped domain
//   ldapattributes    key=attribute lines renaming the attributes below
#if canImport(Glibc)
import Glibc
#endif
import CLDAP
import QmailCore
import UserDirectory

public final class LDAPBackend: ReplicatedDirectory {
    public static let defaultFilter = "(&(objectClass=sqMailAccount)(|(mail=%s)(sqMailAlias=%s)))"
    public static let defaultDomainFilter = "(&(objectClass=sqMailDomain)(|(sqDomainName=%s)(sqDomainAlias=%s)))"
    public static let defaultAttributes: [String: String] = [
        "mail": "mail", "password": "userPassword", "home": "homeDirectory", "mailbox": "sqMailbox",
        "uid": "uidNumber", "gid": "gidNumber", "quota": "sqMailQuota", "status": "sqAccountStatus",
        "forward": "sqMailForward", "domain": "sqDomainName", "domaindir": "sqDomainDirectory",
        "filterpolicy": "sqFilterPolicy", "mailhost": "sqMailHost",
    ]

    public struct Config {
        public var uris: String
        public var base: String
        public var startTLS = false
        public var caCert: String?
        public var timeout = 5
        public var connectTimeout = 5
        /// The provider, when the servers in `uris` are its replicas.
        public var provider: String?
        public var bind: DirectoryLogin?
        public var filter = LDAPBackend.defaultFilter
        public var domainFilter = LDAPBackend.defaultDomainFilter
        public var attributes = NameMap(defaults: LDAPBackend.defaultAttributes)

        public init(uris: String, base: String) {
            self.uris = uris
            self.base = base
        }

        /// The read servers, in the order they are tried.
        public var servers: [String] { uris.split(separator: " ").map(String.init) }

        /// Reads HOME/control; a missing or bad file is a temporary failure.
        /// `admin`: bind as control/ldapadminpassword names when it exists.
        public static func load(home: QmailHome, admin: Bool = false) throws -> Config {
            let c = Control(home: home)
            var uris = try c.list("ldapserver").map { $0.string }
            guard !uris.isEmpty else { throw MailFailure.temporary("control/ldapserver is missing or empty") }
            var provider = try c.line("ldapprovider").flatMap { $0.isEmpty ? nil : $0.string }
            for (file, u) in uris.map({ ("ldapserver", $0) }) + (provider.map { [("ldapprovider", $0)] } ?? [])
            where !(u.hasPrefix("ldap://") || u.hasPrefix("ldaps://") || u.hasPrefix("ldapi://")) || u.contains(" ") {
                throw MailFailure.temporary("control/\(file): \(u) is not an ldap://, ldaps:// or ldapi:// URI")
            }
            // Writers (and the reads their changes depend on) use the provider alone.
            if admin, let p = provider { uris = [p]; provider = nil }
            guard let base = try c.line("ldapbasedn"), !base.isEmpty else {
                throw MailFailure.temporary("control/ldapbasedn is missing or empty")
            }
            var cfg = Config(uris: uris.joined(separator: " "), base: base.string)
            cfg.provider = provider
            if let t = try c.line("ldaptls") {
                switch t.string {
                case "starttls": cfg.startTLS = true
                case "", "none": break
                default: throw MailFailure.temporary("control/ldaptls: want starttls or none")
                }
            }
            cfg.caCert = try c.line("ldapcacert").map { $0.string }
            cfg.timeout = max(1, try c.number("ldaptimeout", default: 5))
            let failover = uris.count > 1 || provider != nil
            cfg.connectTimeout = max(1, try c.number("ldapconnecttimeout", default: failover ? min(2, cfg.timeout) : cfg.timeout))
            cfg.bind = try (admin ? DirectoryLogin.read(c.path("ldapadminpassword")) : nil)
                ?? DirectoryLogin.read(c.path("ldappassword"))
            if let f = try c.line("ldapfilter") { cfg.filter = f.string }
            if let f = try c.line("ldapdomainfilter") { cfg.domainFilter = f.string }
            for f in [cfg.filter, cfg.domainFilter] where !(f.hasPrefix("(") && f.contains("%s")) {
                throw MailFailure.temporary("control/ldapfilter and ldapdomainfilter must be filters holding %s")
            }
            try cfg.attributes.apply(try c.list("ldapattributes"), file: "ldapattributes") { ch in
                (ch >= 65 && ch <= 90) || (ch >= 97 && ch <= 122) || Ascii.isDigit(ch) || ch == Ascii.minus || ch == 59
            }
            return cfg
        }
    }

    public let home: QmailHome
    public let plainPasswordsEnabled = false
    var config: Result<Config, MailFailure>?
    var ld: OpaquePointer?
    /// Which of the servers `ld` talks to.
    var connected = 0
    var providerReader: LDAPBackend?

    let admin: Bool

    /// `admin`: for vfilterpolicy, which writes (control/ldapadminpassword).
    public init(home: QmailHome, admin: Bool = false) {
        self.home = home
        self.admin = admin
    }

    /// For tests and the benchmark: a ready configuration.
    public init(home: QmailHome, config: Config) {
        self.home = home
        self.config = .success(config)
        self.admin = false
    }

    deinit { disconnect() }

    public func disconnect() {
        if let l = ld { ldap_unbind_ext_s(l, nil, nil) }
        ld = nil
    }

    func loadConfig() throws -> Config {
        try loadOnce(&config) { try Config.load(home: home, admin: admin) }
    }

    static func error(_ what: String, _ rc: Int32) -> MailFailure {
        .temporary("LDAP \(what): \(String(cString: ldap_err2string(rc)))")
    }

    /// The provider as a reader of its own (ReplicatedDirectory).
    public func provider() throws -> (UserBackend & RecipientDirectory)? {
        let cfg = try loadConfig()
        guard let p = cfg.provider else { return nil }
        if providerReader == nil {
            var c = cfg
            c.uris = p
            c.provider = nil
            providerReader = LDAPBackend(home: home, config: c)
        }
        return providerReader
    }

    /// The connection, made (and bound) when there is none: to the first
    /// of the servers from `first` on that connects and binds.
    func connection(_ cfg: Config, from first: Int = 0) throws -> OpaquePointer {
        if let l = ld { return l }
        let servers = cfg.servers
        var failures: [String] = []
        for i in first..<max(first, servers.count) {
            do {
                ld = try connect(servers[i], cfg)
                connected = i
                return ld!
            } catch let f as MailFailure {
                failures.append(servers.count > 1 ? "\(servers[i]): \(f.text)" : f.text)
            }
        }
        throw MailFailure.temporary(failures.isEmpty ? "LDAP: no server left to try" : failures.joined(separator: "; "))
    }

    func connect(_ uri: String, _ cfg: Config) throws -> OpaquePointer {
        var l: OpaquePointer?
        var rc = ldap_initialize(&l, uri)
        guard rc == LDAP_SUCCESS, let h = l else { throw LDAPBackend.error("initialize", rc) }
        var ok = false
        defer { if !ok { ldap_unbind_ext_s(h, nil, nil) } }
        var version: Int32 = LDAP_VERSION3
        _ = ldap_set_option(h, LDAP_OPT_PROTOCOL_VERSION, &version)
        _ = ldap_set_option(h, LDAP_OPT_REFERRALS, nil)   // LDAP_OPT_OFF
        var ctv = timeval(tv_sec: cfg.connectTimeout, tv_usec: 0)
        _ = ldap_set_option(h, LDAP_OPT_NETWORK_TIMEOUT, &ctv)
        var tv = timeval(tv_sec: cfg.timeout, tv_usec: 0)
        _ = ldap_set_option(h, LDAP_OPT_TIMEOUT, &tv)
        if let ca = cfg.caCert {
            _ = ca.withCString { ldap_set_option(h, LDAP_OPT_X_TLS_CACERTFILE, $0) }
            var demand: Int32 = LDAP_OPT_X_TLS_DEMAND
            _ = ldap_set_option(h, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand)
            var zero: Int32 = 0
            _ = ldap_set_option(h, LDAP_OPT_X_TLS_NEWCTX, &zero)
        }
        if cfg.startTLS {
            rc = ldap_start_tls_s(h, nil, nil)
            guard rc == LDAP_SUCCESS else { throw LDAPBackend.error("StartTLS", rc) }
        }
        var bind = cfg.bind
        defer { bind?.wipe() }
        var pw = bind?.password ?? []
        defer { explicit_bzero(&pw, pw.count) }
        rc = pw.withUnsafeMutableBytes { p -> Int32 in
            var cred = berval(bv_len: ber_len_t(p.count), bv_val: p.baseAddress?.assumingMemoryBound(to: CChar.self))
            let dn = bind.map { $0.name.string }
            if let dn = dn { return ldap_sasl_bind_s(h, dn, nil, &cred, nil, nil, nil) }
            return ldap_sasl_bind_s(h, nil, nil, &cred, nil, nil, nil)
        }
        guard rc == LDAP_SUCCESS else { throw LDAPBackend.error("bind", rc) }
        ok = true
        return h
    }

    /// RFC 4515: the value with * ( ) \ NUL and non-ASCII as \XX.
    public static func escape(_ value: [UInt8]) throws -> String {
        var out = berval()
        let rc = value.withUnsafeBytes { p -> Int32 in
            var inv = berval(bv_len: ber_len_t(p.count),
                             bv_val: UnsafeMutablePointer(mutating: p.baseAddress?.assumingMemoryBound(to: CChar.self)))
            return ldap_bv2escaped_filter_value(&inv, &out)
        }
        guard rc == 0, let v = out.bv_val else { throw MailFailure.temporary("LDAP: unable to escape a filter value") }
        defer { ber_memfree(v) }
        return String(decoding: UnsafeRawBufferPointer(start: v, count: Int(out.bv_len)), as: UTF8.self)
    }

    static func fill(_ template: String, _ escaped: String) -> String {
        template.split(separator: "%", omittingEmptySubsequences: false).enumerated().map { i, part in
            i == 0 ? String(part) : (part.hasPrefix("s") ? escaped + part.dropFirst() : "%" + part)
        }.joined()
    }

    /// For unit tests: the template filled.
    public static func fillForTests(_ template: String, _ escaped: String) -> String { fill(template, escaped) }

    typealias Entry = [String: [[UInt8]]]

    /// Runs one search; at most `limit` entries (more is ambiguous).
    func search(_ filter: String, attributes: [String], limit: Int32 = 2) throws -> [Entry] {
        let cfg = try loadConfig()
        // A broken connection is made again to the same server first (a
        // restart since the last call only shows when the old connection
        // is used), then to the next; a server that does not answer in
        // time hands over to the next at once.
        var from = 0
        var retried = false
        for _ in 0...cfg.servers.count {
            let h = try connection(cfg, from: from)
            var tv = timeval(tv_sec: cfg.timeout, tv_usec: 0)
            var res: OpaquePointer?
            var cattrs: [UnsafeMutablePointer<CChar>?] = attributes.map { strdup($0) } + [nil]
            defer { for a in cattrs { free(a) } }
            let rc = ldap_search_ext_s(h, cfg.base, LDAP_SCOPE_SUBTREE, filter, &cattrs, 0, nil, nil, &tv, limit, &res)
            defer { if let r = res { ldap_msgfree(r) } }
            if rc == LDAP_SUCCESS {
                return collect(h, res, attributes)
            }
            disconnect()
            if rc == LDAP_SIZELIMIT_EXCEEDED {
                throw MailFailure.temporary("LDAP: more than one entry matches \(filter)")
            }
            if rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT {
                from = connected + (retried || rc == LDAP_TIMEOUT ? 1 : 0)
                retried = true
                if from < cfg.servers.count { continue }
            }
            throw LDAPBackend.error("search", rc)
        }
        throw MailFailure.temporary("LDAP: server unreachable")
    }

    /// The entries found; each entry's DN under the key "".
    func collect(_ h: OpaquePointer, _ res: OpaquePointer?, _ attributes: [String]) -> [Entry] {
        var out: [Entry] = []
        var e = ldap_first_entry(h, res)
        while let entry = e {
            var values: Entry = [:]
            if let dn = ldap_get_dn(h, entry) {
                values[""] = [Array(String(cString: dn).utf8)]
                ldap_memfree(dn)
            }
            for a in attributes {
                guard let vals = ldap_get_values_len(h, entry, a) else { continue }
                var list: [[UInt8]] = []
                var i = 0
                while let bv = vals[i] {
                    list.append(Array(UnsafeRawBufferPointer(start: bv.pointee.bv_val, count: Int(bv.pointee.bv_len))))
                    i += 1
                }
                ldap_value_free_len(vals)
                values[a.lowercased()] = list
            }
            out.append(values)
            e = ldap_next_entry(h, entry)
        }
        return out
    }

    /// The domain entry `domain` (a real or alias name) names; nil when
    /// there is none.
    func hostedDomain(_ domain: [UInt8], _ cfg: Config) throws -> VDomain? {
        let at = cfg.attributes
        let domains = try search(LDAPBackend.fill(cfg.domainFilter, try LDAPBackend.escape(domain)),
                                 attributes: [at["domain"], at["domaindir"], at["uid"], at["gid"], at["mailhost"]])
        guard let d = domains.first else { return nil }
        func one(_ key: String) -> [UInt8]? { d[at[key].lowercased()]?.first }
        guard let real = one("domain") else { throw MailFailure.temporary("LDAP domain entry for \(domain.string) has no \(at["domain"])") }
        var dr = DomainRecord(name: domain, real: real.lowercasedASCII(), dir: one("domaindir")?.string,
                              uid: one("uid"), gid: one("gid"))
        dr.homeHost = one("mailhost")
        return try RemoteDirectory.domain(dr).get()
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
        do {
            let cfg = try loadConfig()
            // Two connects and binds per server, two searches.
            let n = cfg.servers.count
            Watchdog.arm(seconds: 2 * n * (cfg.connectTimeout + cfg.timeout) + 2 * cfg.timeout + 1, what: "the LDAP server")
            defer { Watchdog.disarm() }
            let at = cfg.attributes
            guard let dom = try hostedDomain(domain, cfg) else { return .noSuchDomain }
            func one(_ e: Entry, _ key: String) -> [UInt8]? { e[at[key].lowercased()]?.first }
            let address = user + [Ascii.at] + dom.real
            let accounts = try search(LDAPBackend.fill(cfg.filter, try LDAPBackend.escape(address)),
                                      attributes: ["mail", "password", "home", "mailbox", "uid", "gid", "quota", "status", "forward", "mailhost"].map { at[$0] })
            guard let e = accounts.first else { return .noSuchUser(dom) }
            // The entry's own address names the login (an alias address
            // may have matched).
            var canonical = user
            if let m = one(e, "mail"), let i = m.lastIndex(of: Ascii.at), i > 0 { canonical = Array(m[0..<i]).lowercasedASCII() }
            var a = AccountRecord(user: canonical)
            a.hash = one(e, "password") ?? []
            a.home = one(e, "home")?.string
            a.maildir = one(e, "mailbox")?.string
            a.uid = one(e, "uid")
            a.gid = one(e, "gid")
            a.quota = one(e, "quota")
            a.status = one(e, "status")
            a.forwards = e[at["forward"].lowercased()] ?? []
            a.homeHost = one(e, "mailhost")
            return RemoteDirectory.recipient(a, domain: dom, aliases: aliases, moveMarks: !admin)
        } catch let f as MailFailure {
            return .temporary(f.text)
        } catch {
            return .temporary("LDAP: \(error)")
        }
    }
}
