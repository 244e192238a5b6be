// checkpassword-ldap: virtual mailboxes in an LDAP directory (schemas/,
// control/ldap*). Logins are "user@domain", "user%domain", or "user" in
// control/vdefaultdomain. Runs as root under qmail-popup and becomes the
// mailbox's user; trusts the qmail home and the LDAP server it names. The
// server down, slow or misconfigured: exit 111, never "wrong password".
//   qmail-popup HOST checkpassword-ldap qmail-pop3d Maildir
import Checkpassword
import QmailCore
import UserDirectoryLDAP

/// checkpassword-ldap's entry point: the multi-call dispatcher runs it for argv[0] "checkpassword-ldap".
func checkpasswordLdapMain() {
    Sys.exit(Checkpassword.main(name: "checkpassword-ldap", argv: CommandLine.arguments) {
        LDAPBackend(home: QmailHome.current())
    })
}
