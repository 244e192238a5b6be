// qmail-remote's SMTP AUTH (RFC 4954) to a relay that control/smtproutes
// gives a login for: PLAIN when offered, else LOGIN, and only inside TLS
// unless the site wrote the user as "-user". Every failure here defers:
// a relay that refuses our login points at this site's configuration, and
// the mail waits for the fix instead of bouncing. The password goes into
// no report, and never onto the wire in clear unless the site allowed it.
import QmailCore

extension Remote {
    func authenticate(_ login: RelayLogin, ehloSucceeded: Bool) throws {
        let user = safe(login.user)
        guard ehloSucceeded else {
            throw quit("ZConnected to ", " but it refused EHLO, so I cannot log in as \(user)")
        }
        if !tlsActive && !login.clearAllowed {
            smtpText = []  // its EHLO reply says nothing more
            throw passwordNeedsTLS(login, because: tls == nil ? "I do not use TLS with it (control/notlshosts)" : "it does not offer STARTTLS")
        }
        var code: Int
        if authMechanisms.contains("PLAIN") {
            try send(Array("AUTH PLAIN ".utf8) + Base64.encode([0] + login.user + [0] + login.password) + [13, 10])
            code = try smtpCode()
        } else if authMechanisms.contains("LOGIN") {
            try send(Array("AUTH LOGIN\r\n".utf8))
            code = try smtpCode()
            for answer in [login.user, login.password] where code == 334 {
                try send(Base64.encode(answer) + [13, 10])
                code = try smtpCode()
            }
        } else {
            smtpText = []
            throw quit("ZConnected to ", " but it offers no AUTH PLAIN or LOGIN to log in as \(user)")
        }
        if code / 100 == 2 { return }
        if code >= 500 { throw quit("ZConnected to ", " but it refused the login as \(user) (see control/smtproutes)") }
        throw quit("ZConnected to ", " but the login as \(user) failed for now")
    }

    func passwordNeedsTLS(_ login: RelayLogin, because why: String) -> RemoteDone {
        quit("ZConnected to ", " but \(why), and I send the password for \(safe(login.user)) only over TLS")
    }
}
