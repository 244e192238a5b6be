// vmoveuser-ldap: vmoveuser with the home hosts in LDAP; exec'd by vmoveuser
// when control/userdirectory says "ldap". Run as root; writes the home host
// as control/ldapadminpassword (else ldappassword) names, and reads through this
// host's own servers to see the change arrive. Exit 0 done, 1 refused
// (nothing written), 111 system failure (rerun it: every step resumes).
import QmailCore
import VHosting
import UserDirectoryLDAP

/// vmoveuser-ldap's entry point: the multi-call dispatcher runs it for argv[0] "vmoveuser-ldap".
func vmoveuserLdapMain() {
    Sys.exitFlushing(Admin.main("vmoveuser", Array(CommandLine.arguments.dropFirst()),
                                directory: { LDAPBackend(home: $0, admin: $1) }))
}
