// Logging in: the mail password, checked by the same user directory as
// POP3 and SMTP AUTH, under the same failed-login limits (LoginLimiter:
// control/authfaillimit, per address and per account) and logged in the
// same line format (LoginLog, so contrib/fail2ban's filter applies).
// The file backend is checked in-process; where control/userdirectory
// says "ldap" or "mysql", HOME/bin/checkpassword-ldap or -mysql is run
// (so this program never links libldap or libmariadb).
import QmailCore
import UserDirectory
import VHosting

public struct LoginCheck {
    public let home: QmailHome

    public init(home: QmailHome) { self.home = home }

    /// The login as the directory knows it: lower case, and a bare name in
    /// control/vdefaultdomain, as checkpassword-file takes it.
    public func canonical(_ login: String) -> String? {
        var l = login.trimmingCharacters(in: " \t").lowercased()
        if l.isEmpty || l.utf8.count > 256 || l.utf8.contains(where: { $0 < 33 || $0 == 127 }) { return nil }
        if !l.contains("@") {
            guard let d = (try? Control(home: home).line("vdefaultdomain")) ?? nil, !d.isEmpty else { return nil }
            l += "@" + d.string.lowercased()
        }
        return l
    }

    /// Checks a password under the login limits; logs the attempt (never the password).
    public func check(login: String, password: String, remote: String) -> CheckResult {
        let user = Array(login.utf8)
        let limiter = LoginLimiter(home: home, remote: remote)
        let r = !limiter.admit(user: user) ? .limited : verify(user, Array(password.utf8))
        limiter.settle(r, user: user)
        _ = try? Sys.writeAll(2, LoginLog.line(program: "qmail-webadmin", result: LoginLog.result(r), user: user, remote: remote))
        return r
    }

    func verify(_ user: [UInt8], _ password: [UInt8]) -> CheckResult {
        if password.isEmpty || password.count > Names.maxPassword { return .rejected }
        let variant: String?
        do { variant = try DirectoryChoice.variant(of: "checkpassword", home: home) } catch { return .temporary }
        if let program = variant {
            return CheckpasswordClient.checkpassword([program, "/bin/true"], user: user, secret: password, stamp: [])
        }
        switch Authenticator.authenticate(FileBackend(home: home, plainPasswordsEnabled: false), login: user,
                                          password: password, timestamp: []) {
        case .ok: return .ok
        case .unknownUser, .mismatch, .disabled: return .rejected
        case .temporary: return .temporary
        }
    }

    /// control/webadmins: the logins that administer the whole system.
    public func isSystemAdministrator(_ login: String) -> Bool {
        let list = (try? Control(home: home).list("webadmins")) ?? []
        return list.contains { $0.string.lowercased() == login }
    }
}
