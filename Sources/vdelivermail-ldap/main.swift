// vdelivermail-ldap: vdelivermail with its recipients in LDAP; exec'd by
// vdelivermail when control/userdirectory says "ldap" (so vdelivermail itself
// never links libldap). Runs as the domain's user; exit 0/100/111 as
// vdelivermail. LDAP down or slow: 111, the message stays queued.
import QmailCore
import UserDirectoryLDAP
import VDelivery

Sys.exit(VDeliver.exitCode(argv: CommandLine.arguments, backend: { LDAPBackend(home: $0) }))
