// System accounts: passwd for uid/gid/home/shell, shadow for the hash.
// getpwnam_r's "not found" answers are told apart from its errors: an NSS
// service that fails (LDAP down, I/O error) is a temporary failure, never
// "no such user".
#if canImport(Glibc)
import Glibc
#endif
import CCrypt
import QmailCore

public struct SystemBackend: UserBackend {
    public let plainPasswordsEnabled = false

    public init() {}

    public func lookup(login: [UInt8]) -> LookupResult {
        // Names that no passwd entry can carry are unknown without asking.
        if login.isEmpty || login.count > 256 || login.contains(0) || login.contains(Ascii.colon)
            || login.contains(Ascii.lf) || login.contains(Ascii.slash) {
            return .noSuchUser
        }
        let name = login.string
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buf = [CChar](repeating: 0, count: 16384)
        let rc = getpwnam_r(name, &pw, &buf, buf.count, &result)
        if rc != 0 {
            if SystemBackend.meansNotFound(rc) { return .noSuchUser }
            return .temporary("getpwnam \(name): \(Sys.strerror(rc))")
        }
        guard result != nil else { return .noSuchUser }
        let home = String(cString: pw.pw_dir)
        let shell = String(cString: pw.pw_shell)
        var hash = Array(String(cString: pw.pw_passwd).utf8)
        var active = true
        if hash == Array("x".utf8) {
            switch shadowEntry(name) {
            case .failure(let f): return .temporary(f.text)
            case .success(let entry):
                hash = entry?.hash ?? []
                active = entry?.active ?? true
            }
        }
        return .found(Mailbox(login: login, uid: pw.pw_uid, gid: pw.pw_gid, home: home,
                              maildir: home + "/Maildir", shell: shell, passwordHash: hash,
                              active: active, initGroups: true))
    }

    /// getpwnam_r(3): these codes mean "the name was not found".
    static func meansNotFound(_ rc: Int32) -> Bool {
        rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM
    }

    struct ShadowEntry { var hash: [UInt8]; var active: Bool }

    /// The shadow entry: nil when there is none; failure when shadow cannot
    /// be read (not root: EACCES), which is temporary.
    func shadowEntry(_ name: String) -> Result<ShadowEntry?, Failure> {
        var sp = spwd()
        var result: UnsafeMutablePointer<spwd>? = nil
        var buf = [CChar](repeating: 0, count: 16384)
        let rc = getspnam_r(name, &sp, &buf, buf.count, &result)
        defer { explicit_bzero(&buf, buf.count) }
        if rc != 0 {
            if rc == ENOENT || rc == ESRCH { return .success(nil) }
            return .failure(Failure(text: "getspnam \(name): \(Sys.strerror(rc))"))
        }
        guard result != nil else {
            // glibc answers "no entry" (0, NULL) when it cannot open the
            // shadow file at all, e.g. when not run as root: that is a
            // temporary failure, not a locked account.
            if access("/etc/shadow", R_OK) != 0 {
                return .failure(Failure(text: "unable to read /etc/shadow: \(Sys.strerror(errno)) (checkpassword must run as root)"))
            }
            return .success(nil)
        }
        let hash = Array(String(cString: sp.sp_pwdp).utf8)
        let today = Sys.now() / 86400
        // sp_expire: the day the account expires; -1 or 0 for never.
        let expired = sp.sp_expire > 0 && today >= Int(sp.sp_expire)
        return .success(ShadowEntry(hash: hash, active: !expired))
    }

    struct Failure: Error { let text: String }
}
