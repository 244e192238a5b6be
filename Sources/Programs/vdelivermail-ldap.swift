// vdelivermail-ldap: vdelivermail with its recipients in LDAP; exec'd by
// vdelivermail when control/userdirectory says "ldap" (so vdelivermail itself
// never links libldap). Runs as the domain's user; exit 0/100/111 as
// vdelivermail. LDAP down or slow: 111, the message stays queued.
import QmailCore
import UserDirectoryLDAP
import VDelivery

/// vdelivermail-ldap's entry point: the multi-call dispatcher runs it for argv[0] "vdelivermail-ldap".
func vdelivermailLdapMain() {
    Sys.exit(VDeliver.exitCode(argv: CommandLine.arguments, backend: { LDAPBackend(home: $0) }))
}
