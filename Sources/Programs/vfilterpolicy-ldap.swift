// vfilterpolicy-ldap: vfilterpolicy with mailboxes' policies in LDAP; exec'd by
// vfilterpolicy when control/userdirectory says "ldap". Run as root; writes
// as control/ldapadminpassword (else ldappassword) names.
// Exit 0 done, 1 refused (nothing written), 111 system failure.
import QmailCore
import VHosting
import UserDirectoryLDAP

/// vfilterpolicy-ldap's entry point: the multi-call dispatcher runs it for argv[0] "vfilterpolicy-ldap".
func vfilterpolicyLdapMain() {
    Sys.exitFlushing(Admin.main("vfilterpolicy", Array(CommandLine.arguments.dropFirst()),
                                policyStore: { LDAPBackend(home: $0, admin: true) }))
}
