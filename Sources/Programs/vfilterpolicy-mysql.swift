// vfilterpolicy-mysql: vfilterpolicy with mailboxes' policies in MySQL; exec'd by
// vfilterpolicy when control/userdirectory says "mysql". Run as root; writes
// as control/sqladminpassword (else sqlpassword) names.
// Exit 0 done, 1 refused (nothing written), 111 system failure.
import QmailCore
import VHosting
import UserDirectorySQL

/// vfilterpolicy-mysql's entry point: the multi-call dispatcher runs it for argv[0] "vfilterpolicy-mysql".
func vfilterpolicyMysqlMain() {
    Sys.exitFlushing(Admin.main("vfilterpolicy", Array(CommandLine.arguments.dropFirst()),
                                policyStore: { SQLBackend(home: $0, admin: true) }))
}
