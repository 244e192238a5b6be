// qmail-rcptcheck-ldap: qmail-rcptcheck with the recipients in LDAP; exec'd by
// qmail-rcptcheck when control/userdirectory says "ldap" (so qmail-rcptcheck
// itself never links the client library). Runs as qmail-smtpd's user; same
// argument and exit codes. LDAP down or slow: 111, qmail-smtpd says 451.
import QmailCore
import QmailRcptCheck
import UserDirectoryLDAP

/// qmail-rcptcheck-ldap's entry point: the multi-call dispatcher runs it for argv[0] "qmail-rcptcheck-ldap".
func qmailRcptcheckLdapMain() {
    Sys.exit(RcptCheck.main(argv: CommandLine.arguments, directory: { LDAPBackend(home: $0) }))
}
