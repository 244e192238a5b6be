// What the directory-server backends (LDAP, SQL) share: the delivery-lookup
// protocol vdelivermail uses, the records a server returns and how they
// become mailboxes, and the small key=value name maps their control files
// use. A record that cannot be understood is a temporary failure (a
// misconfigured directory must never bounce mail or refuse a login).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Delivery lookups: user@domain to a mailbox, an alias, or no such user.
public protocol RecipientDirectory {
    func recipient(user: [UInt8], domain: [UInt8], aliases: Bool) -> FileBackend.Recipient
}

extension FileBackend: RecipientDirectory {}

/// A hosted domain as a directory server describes it.
public struct DomainRecord: Equatable {
    public var name: [UInt8]
    public var real: [UInt8]
    public var dir: String?
    public var uid: [UInt8]?
    public var gid: [UInt8]?
    /// The default home host of its mailboxes (cluster).
    public var homeHost: [UInt8]?

    public init(name: [UInt8], real: [UInt8], dir: String? = nil, uid: [UInt8]? = nil, gid: [UInt8]? = nil) {
        self.name = name
        self.real = real
        self.dir = dir
        self.uid = uid
        self.gid = gid
    }
}

/// An account (a mailbox, or a pure alias when it has only forwards).
public struct AccountRecord: Equatable {
    public var user: [UInt8]
    public var hash: [UInt8] = []
    public var home: String?
    public var maildir: String?
    public var uid: [UInt8]?
    public var gid: [UInt8]?
    public var quota: [UInt8]?
    public var status: [UInt8]?
    public var forwards: [[UInt8]] = []
    /// The cluster host holding the mailbox; nil: the domain's default.
    public var homeHost: [UInt8]?

    public init(user: [UInt8]) { self.user = user }
}

public enum RemoteDirectory {
    /// Longest user and domain sent to a server; longer is nobody.
    public static let maxUser = Names.maxUser
    public static let maxDomain = Names.maxDomain

    /// Splits a login: "user@domain", "user%domain", or "user" in
    /// control/vdefaultdomain. nil means nobody (empty, too long, NUL).
    public static func splitLogin(_ login: [UInt8], home: QmailHome) -> Result<(user: [UInt8], domain: [UInt8])?, MailFailure> {
        var user = login
        var domain: [UInt8]
        if let at = login.lastIndex(of: Ascii.at) ?? login.lastIndex(of: Ascii.percent) {
            user = Array(login[0..<at])
            domain = Array(login[(at + 1)...])
        } else {
            do {
                guard let d = try Control(home: home).line("vdefaultdomain"), !d.isEmpty else { return .success(nil) }
                domain = d
            } catch {
                return .failure(.temporary("unable to read control/vdefaultdomain: \(error)"))
            }
        }
        guard let parts = normalize(user: user, domain: domain) else { return .success(nil) }
        return .success(parts)
    }

    /// Lower-cases and bounds a recipient; nil when it cannot name anybody.
    /// No other character is refused: the backends escape (LDAP) or bind
    /// (SQL) whatever they send.
    public static func normalize(user: [UInt8], domain: [UInt8]) -> (user: [UInt8], domain: [UInt8])? {
        if user.isEmpty || domain.isEmpty || user.count > maxUser || domain.count > maxDomain { return nil }
        if user.contains(0) || domain.contains(0) { return nil }
        return (user.lowercasedASCII(), domain.lowercasedASCII())
    }

    /// A password value as stored in a directory: "{CRYPT}hash" (LDAP's
    /// userPassword) or a bare crypt(3) hash.
    public static func cryptHash(_ value: [UInt8]) -> [UInt8] {
        let prefix = Array("{crypt}".utf8)
        if value.count >= prefix.count && Array(value[0..<prefix.count]).lowercasedASCII() == prefix {
            return Array(value[prefix.count...])
        }
        return value
    }

    static func number(_ v: [UInt8]?, _ what: String) throws -> UInt32? {
        guard let v = v, !v.isEmpty else { return nil }
        guard let n = Decimal.parse(v), n <= Int(UInt32.max) else {
            throw MailFailure.temporary("directory entry has a bad \(what): \(v.string)")
        }
        return UInt32(n)
    }

    /// The domain a record describes; uid/gid/dir may be absent when every
    /// account carries its own.
    public static func domain(_ d: DomainRecord) -> Result<VDomain, MailFailure> {
        do {
            let uid = try number(d.uid, "uid") ?? 0
            let gid = try number(d.gid, "gid") ?? 0
            let host = try homeHost(d.homeHost, "domain \(d.name.string)")
            return .success(VDomain(name: d.name, real: d.real, dir: d.dir ?? "", uid: uid, gid: gid, homeHost: host))
        } catch let f as MailFailure { return .failure(f) } catch { return .failure(.temporary("\(error)")) }
    }

    /// A home host value: nil when absent or empty; a value that is no
    /// host name is a misconfiguration (temporary).
    static func homeHost(_ v: [UInt8]?, _ whose: String) throws -> String? {
        guard let v = v, !v.isEmpty else { return nil }
        guard let h = HomeHost.parse(v) else { throw MailFailure.temporary("directory entry of \(whose) has a bad home host: \(v.string)") }
        return h
    }

    /// A directory's forwards are addresses only ("&addr" or "addr"); a
    /// program or file target is dropped, so whoever can write the
    /// directory cannot run commands as the domain's user.
    public static func forwardAddresses(_ targets: [[UInt8]]) -> [[UInt8]] {
        targets.compactMap { t in
            var a = t
            while let f = a.first, f == Ascii.space || f == Ascii.tab { a.removeFirst() }
            if a.first == 38 { a.removeFirst() }
            guard let f = a.first, f != 124, f != Ascii.slash, f != Ascii.dot, f != Ascii.hash,
                  !a.contains(Ascii.lf), !a.contains(0) else { return nil }
            return a
        }
    }

    /// What delivery does with an account. `moveMarks`: a mailbox that
    /// vmoveuser marked here is "try later" (the administrators' writers,
    /// vmoveuser's own, see the directory as it is).
    public static func recipient(_ a0: AccountRecord, domain dom: VDomain, aliases: Bool,
                                 moveMarks: Bool = true) -> FileBackend.Recipient {
        var a = a0
        a.forwards = forwardAddresses(a.forwards)
        let isMailbox = a.home != nil || a.maildir != nil
        if !isMailbox {
            // vdelivermail reads alias targets as .qmail lines: "&addr" is a forward.
            if aliases && !a.forwards.isEmpty { return .alias(a.forwards.map { [38] + $0 }, dom) }
            if !a.forwards.isEmpty { return .noSuchUser(dom) }
            return .temporary("directory entry for \(a.user.string)@\(dom.real.string) has neither a mailbox nor forwards")
        }
        switch mailbox(a, domain: dom) {
        case .success(let m):
            // vmoveuser is copying the Maildir away from here: mail and
            // logins wait until this host's directory names the new home.
            do {
                if moveMarks, let to = try HomeHost.moving(m, user: a.user, domainDir: dom.dir) {
                    return .temporary("mailbox \(a.user.string)@\(dom.real.string) is being moved to \(to)")
                }
            } catch { return .temporary("\(error)") }
            return .mailbox(m, dom)
        case .failure(let f): return .temporary(f.text)
        }
    }

    public static func mailbox(_ a: AccountRecord, domain dom: VDomain) -> Result<Mailbox, MailFailure> {
        let login = a.user + [Ascii.at] + dom.real
        do {
            let uid = try number(a.uid, "uid") ?? dom.uid
            let gid = try number(a.gid, "gid") ?? dom.gid
            var home = a.home ?? ""
            if home.isEmpty {
                if let m = a.maildir, m.hasSuffix("/Maildir") { home = String(m.dropLast("/Maildir".count)) }
                else if !dom.dir.isEmpty { home = dom.dir + "/" + a.user.string }
            }
            var maildir = a.maildir ?? (home + "/Maildir")
            while maildir.count > 1 && maildir.hasSuffix("/") { maildir.removeLast() }
            guard home.hasPrefix("/"), maildir.hasPrefix("/") else {
                throw MailFailure.temporary("directory entry for \(login.string) has no absolute home or mailbox path")
            }
            guard let quota = Quota.parse(a.quota ?? []) else {
                throw MailFailure.temporary("directory entry for \(login.string) has a bad quota: \((a.quota ?? []).string)")
            }
            var active = true
            var bounce = false
            switch (a.status ?? []).lowercasedASCII().string {
            case "", "active": break
            case "nologin", "nopop": active = false
            case "bounce": bounce = true
            case "disabled": active = false; bounce = true
            default:
                throw MailFailure.temporary("directory entry for \(login.string) has an unknown status: \((a.status ?? []).string)")
            }
            var m = Mailbox(login: login, uid: uid, gid: gid, home: home, maildir: maildir, shell: "/bin/false",
                            quota: quota, passwordHash: cryptHash(a.hash), active: active, bounceMail: bounce)
            m.forwards = a.forwards
            m.homeHost = try homeHost(a.homeHost, login.string) ?? dom.homeHost
            return .success(m)
        } catch let f as MailFailure { return .failure(f) } catch { return .failure(.temporary("\(error)")) }
    }

    /// Turns a delivery answer into a login lookup answer.
    public static func lookupResult(_ r: FileBackend.Recipient) -> LookupResult {
        switch r {
        case .mailbox(let m, _): return .found(m)
        case .temporary(let why): return .temporary(why)
        case .alias, .noSuchUser, .noSuchDomain: return .noSuchUser
        }
    }
}

/// A control file of "key=value" lines renaming attributes, tables or
/// columns. Values are checked against `allowed` (names are pasted into
/// queries and filters, so only plain identifiers pass).
public struct NameMap {
    public var names: [String: String]

    public init(defaults: [String: String]) { names = defaults }

    public subscript(key: String) -> String { names[key] ?? key }

    /// Applies the file's lines; an unknown key or a bad value is an error
    /// (a misconfiguration, so temporary for the caller).
    public mutating func apply(_ lines: [[UInt8]], file: String, allowed: (UInt8) -> Bool) throws {
        for line in lines {
            guard let eq = line.firstIndex(of: Ascii.equals) else {
                throw MailFailure.temporary("control/\(file): line \(line.string) is not key=value")
            }
            let key = Array(line[0..<eq]).string.trimmingSpaces
            let value = Array(line[(eq + 1)...])
            guard names[key] != nil else { throw MailFailure.temporary("control/\(file): unknown key \(key)") }
            guard !value.isEmpty, value.count <= 64, value.allSatisfy(allowed) else {
                throw MailFailure.temporary("control/\(file): bad name for \(key)")
            }
            names[key] = value.string
        }
    }
}

/// The root-only credentials file of a backend: line 1 a name (bind DN,
/// SQL user), line 2 the password. It must not be readable by everybody.
public struct DirectoryLogin {
    public var name: [UInt8]
    public var password: [UInt8]

    /// nil when the file does not exist.
    public static func read(_ path: String) throws -> DirectoryLogin? {
        var st = stat()
        if stat(path, &st) != 0 {
            if errno == ENOENT { return nil }
            throw MailFailure.temporary("unable to stat \(path): \(Sys.strerror(errno))")
        }
        if st.st_mode & 0o007 != 0 {
            throw MailFailure.temporary("\(path) is readable by others; chmod 600 it")
        }
        guard var data = try FileIO.read(path, limit: 4096) else { return nil }
        defer { explicit_bzero(&data, data.count) }
        var lines = data.split(separator: Ascii.lf, omittingEmptySubsequences: false).map { Array($0) }
        for i in lines.indices where lines[i].last == Ascii.cr { lines[i].removeLast() }
        return DirectoryLogin(name: lines.first ?? [], password: lines.count > 1 ? lines[1] : [])
    }

    public mutating func wipe() { explicit_bzero(&password, password.count); password = [] }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A hard deadline around a directory-server conversation. libldap and
/// libmariadb honour their timeouts almost everywhere, but not all (a TLS
/// handshake with an ldaps:// server that accepts and never answers waits
/// for ever). If the deadline passes, the process says so and exits 111:
/// a temporary failure, as the checkpassword and delivery interfaces want.
public enum Watchdog {
    public static func arm(seconds: Int, what: String) {
        let name = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "backend"
        let text = "\(name): temporary failure: \(what) did not answer within \(seconds) seconds\n"
        Sys.exitOnAlarm(code: QmailExit.temporary, message: Array(text.utf8))
        alarm(UInt32(max(1, seconds)))
    }

    public static func disarm() {
        alarm(0)
    }
}

/// A backend's configuration, read once and remembered, failure included:
/// a broken configuration stays a temporary failure for the whole run.
public func loadOnce<Value>(_ cache: inout Result<Value, MailFailure>?, _ load: () throws -> Value) throws -> Value {
    if cache == nil {
        do { cache = .success(try load()) } catch let f as MailFailure { cache = .failure(f) } catch {
            cache = .failure(.temporary("\(error)"))
        }
    }
    return try cache!.get()
}
