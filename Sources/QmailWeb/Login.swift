// Logging in: the mail password, checked by the same user directory as
// POP3 and SMTP AUTH, under the same failed-login limits (LoginLimiter:
// control/authfaillimit, per address and per account) and logged in the
// same line format (LoginLog, so contrib/fail2ban's filter applies).
// The file backend is checked in-process; where control/userdirectory
// says "ldap" or "mysql", HOME/bin/checkpassword-ldap or -mysql is run
// (so this program never links libldap or libmariadb), as root when this
// program is root: it changes to the mailbox's uid to run what it is
// given, here a shell line that prints where the mailbox is
// (DirectoryMailbox), since the v* commands' file store does not hold it.
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

    /// Checks a password under the login limits; logs the attempt (never
    /// the password). With an LDAP or MySQL directory, a good login also
    /// says where its mailbox is.
    public func check(login: String, password: String, remote: String) -> (CheckResult, DirectoryMailbox?) {
        let user = Array(login.utf8)
        let limiter = LoginLimiter(home: home, remote: remote)
        let (r, found) = !limiter.admit(user: user) ? (.limited, nil) : verify(user, Array(password.utf8))
        limiter.settle(r, user: user)
        _ = try? Sys.writeAll(2, LoginLog.line(program: "qmail-webadmin", result: LoginLog.result(r), user: user, remote: remote))
        return (r, found)
    }

    func verify(_ user: [UInt8], _ password: [UInt8]) -> (CheckResult, DirectoryMailbox?) {
        if password.isEmpty || password.count > Names.maxPassword { return (.rejected, nil) }
        let backend: String?
        do { backend = try DirectoryChoice.remoteBackend(home: home) } catch { return (.temporary, nil) }
        if let backend {
            let (r, out) = CheckpasswordClient.checkpassword([home.bin("checkpassword-" + backend), "/bin/sh", "-c", DirectoryMailbox.report],
                                                             user: user, secret: password, stamp: [], limit: 8192)
            guard r == .ok else { return (r, nil) }
            // a login the directory accepts but whose mailbox it cannot say is no verdict
            guard let m = DirectoryMailbox(backend: backend, report: out) else { return (.temporary, nil) }
            return (.ok, m)
        }
        switch Authenticator.authenticate(FileBackend(home: home, plainPasswordsEnabled: false), login: user,
                                          password: password, timestamp: []) {
        case .ok: return (.ok, nil)
        case .unknownUser, .mismatch, .disabled: return (.rejected, nil)
        case .temporary: return (.temporary, nil)
        }
    }

    /// control/webadmins: the logins that administer the whole system.
    public func isSystemAdministrator(_ login: String) -> Bool {
        let list = (try? Control(home: home).list("webadmins")) ?? []
        return list.contains { $0.string.lowercased() == login }
    }
}

/// A mailbox as an LDAP or MySQL directory gives it at login: its
/// directory (where vdelivermail-ldap/-mysql deliver and look for
/// .vacation and .qmail), Maildir and owner.
public struct DirectoryMailbox: Sendable, Equatable {
    /// "ldap" or "mysql".
    public let backend: String
    public let directory: String
    public let maildir: String
    public let uid: UInt32
    public let gid: UInt32

    /// Run by checkpassword-ldap/-mysql as the mailbox, in its directory,
    /// with HOME and MAILDIR set: one line each for uid, gid, HOME, MAILDIR.
    static let report = #"printf '%s\n' "$(id -u)" "$(id -g)" "$HOME" "${MAILDIR:-$HOME/Maildir}""#

    init?(backend: String, report: [UInt8]) {
        let lines = report.split(separator: Ascii.lf, omittingEmptySubsequences: false).map { Array($0) }
        guard lines.count == 5, lines[4].isEmpty, let u = Decimal.parse(lines[0]), let g = Decimal.parse(lines[1]),
              u > 0, u <= Int(UInt32.max), g <= Int(UInt32.max),
              lines[2].first == Ascii.slash, lines[3].first == Ascii.slash else { return nil }
        self.backend = backend
        uid = UInt32(u)
        gid = UInt32(g)
        directory = lines[2].string
        maildir = lines[3].string
    }

    /// The directory's name as the pages say it.
    public var directoryName: String { backend == "ldap" ? "LDAP directory" : "MySQL database" }
}
