// qmail-filter-ldap: qmail-filter with mailboxes' own policies in LDAP; exec'd
// by qmail-filter when control/userdirectory says "ldap" (so qmail-filter
// itself never links the client library). Runs as qmail-filter's caller;
// same arguments, descriptors and exit codes. LDAP down: 451 for each message.
import QmailCore
import QmailFilter
import UserDirectoryLDAP

/// qmail-filter-ldap's entry point: the multi-call dispatcher runs it for argv[0] "qmail-filter-ldap".
func qmailFilterLdapMain() {
    let session = CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--session"
    Sys.exit(FilterProgram.main(session: session, directory: { LDAPBackend(home: $0) }))
}
