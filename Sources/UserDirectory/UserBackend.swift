// The user-directory protocol: one interface serves logins (checkpassword)
// and deliveries (which mailbox, which uid, what quota). A backend answers a
// lookup with a mailbox, "no such user", or a temporary failure: a backend
// that cannot be read is never taken for "no such user".
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// One mailbox as a backend describes it.
public struct Mailbox: Sendable, Equatable {
    /// The login name as the backend knows it: "user@domain" for virtual
    /// users, the account name for system users.
    public var login: [UInt8]
    public var uid: uid_t
    public var gid: gid_t
    public var home: String
    /// The Maildir (with no trailing slash).
    public var maildir: String
    public var shell: String
    public var quota: Quota
    /// crypt(3) hash; empty when the backend holds none.
    public var passwordHash: [UInt8]
    /// The plain password, when the backend stores one (needed for APOP);
    /// only used when plain passwords are enabled for that backend.
    public var clearPassword: [UInt8]?
    /// False when logins are refused (vpopmail's NO_POP, an expired account).
    public var active: Bool
    /// True when mail to this mailbox bounces (vpopmail's BOUNCE_MAIL).
    public var bounceMail: Bool
    /// System accounts get their supplementary groups (initgroups);
    /// virtual mailboxes only their one gid.
    public var initGroups: Bool
    /// Addresses each message is also forwarded to (the LDAP and SQL
    /// backends' forwards; the file backend keeps them in DIR/.qmail).
    public var forwards: [[UInt8]] = []
    /// The cluster host that holds this Maildir (the mailbox's own, else
    /// its domain's default); nil: this host. Mail for a mailbox homed
    /// elsewhere is sent there (vdelivermail, ClusterRoute).
    public var homeHost: String?

    public init(login: [UInt8], uid: uid_t, gid: gid_t, home: String, maildir: String, shell: String,
                quota: Quota = .unlimited, passwordHash: [UInt8], clearPassword: [UInt8]? = nil,
                active: Bool = true, bounceMail: Bool = false, initGroups: Bool = false) {
        self.login = login
        self.uid = uid
        self.gid = gid
        self.home = home
        self.maildir = maildir
        self.shell = shell
        self.quota = quota
        self.passwordHash = passwordHash
        self.clearPassword = clearPassword
        self.active = active
        self.bounceMail = bounceMail
        self.initGroups = initGroups
    }
}

/// The answer to a lookup.
public enum LookupResult: Sendable, Equatable {
    case found(Mailbox)
    case noSuchUser
    /// The backend could not answer now (unreadable file, I/O error, lookup
    /// service down): retry later, never a verdict.
    case temporary(String)
}

/// The answer to a login, Dovecot's passdb result.
public enum AuthResult: Sendable, Equatable {
    case ok(Mailbox)
    case unknownUser
    case disabled
    case mismatch
    case temporary(String)
}

public protocol UserBackend {
    /// Looks up a login name ("user", "user@domain").
    func lookup(login: [UInt8]) -> LookupResult
    /// Whether plain-text (and APOP) passwords may be checked. Off unless
    /// the backend's configuration enables it.
    var plainPasswordsEnabled: Bool { get }
}

public enum Authenticator {
    /// Checks a login. qmail-popup sends its greeting's timestamp for
    /// USER/PASS and APOP alike, so a timestamp does not mean APOP: the
    /// password is always checked against the hash (one crypt run, against
    /// a dummy hash when there is no user), and when plain passwords are
    /// enabled it may also be the APOP digest, MD5(timestamp + password)
    /// in hex, or a CRAM-MD5 login as qmail-smtpd passes it (the AUTH
    /// patches' convention: the challenge in the password field, the
    /// client's HMAC-MD5 digest in the timestamp field). Neither digest can
    /// be mistaken for the other input: a greeting timestamp or challenge
    /// starts with '<', a digest is hex. Every comparison is constant-time.
    /// A replica's refusal is checked again with its provider (Replicas).
    public static func authenticate(_ backend: UserBackend, login: [UInt8], password: [UInt8],
                                    timestamp: [UInt8]) -> AuthResult {
        Replicas.confirm(check(backend, login: login, password: password, timestamp: timestamp), backend) {
            check($0, login: login, password: password, timestamp: timestamp)
        }
    }

    static func check(_ backend: UserBackend, login: [UInt8], password: [UInt8], timestamp: [UInt8]) -> AuthResult {
        let mailbox: Mailbox?
        switch backend.lookup(login: login) {
        case .temporary(let why): return .temporary(why)
        case .noSuchUser: mailbox = nil
        case .found(let m): mailbox = m
        }
        let clear = backend.plainPasswordsEnabled ? mailbox?.clearPassword.flatMap { $0.isEmpty ? nil : $0 } : nil
        var matched = false
        if let m = mailbox, !m.passwordHash.isEmpty {
            matched = PasswordHash.verify(password, hash: m.passwordHash)
        } else {
            _ = PasswordHash.verify(password, hash: PasswordHash.dummy)
            if let c = clear { matched = ConstantTime.equals(c, password) }
        }
        if !timestamp.isEmpty && backend.plainPasswordsEnabled {
            // Without a plain password the digest is compared with one
            // made from nothing anybody can know, so the work is the same.
            let key = clear ?? PasswordHash.dummy
            let apop = MD5.hex(timestamp + key)
            if ConstantTime.equals(apop, password.lowercasedHex()) && clear != nil { matched = true }
            let cram = MD5.hmacHex(key: key, message: password)
            if ConstantTime.equals(cram, timestamp.lowercasedHex()) && clear != nil { matched = true }
        }
        guard let m = mailbox else { return .unknownUser }
        if !matched { return .mismatch }
        if !m.active { return .disabled }
        return .ok(m)
    }
}

extension Array where Element == UInt8 {
    /// ASCII A-F folded to a-f (clients may send the digest in upper case).
    func lowercasedHex() -> [UInt8] { map { ($0 >= 65 && $0 <= 70) ? $0 + 32 : $0 } }
}
