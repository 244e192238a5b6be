// vmoveuser-mysql: vmoveuser with the home hosts in MySQL; exec'd by vmoveuser
// when control/userdirectory says "mysql". Run as root; writes the home host
// as control/sqladminpassword (else sqlpassword) names, and reads through this
// host's own servers to see the change arrive. Exit 0 done, 1 refused
// (nothing written), 111 system failure (rerun it: every step resumes).
import QmailCore
import VHosting
import UserDirectorySQL

/// vmoveuser-mysql's entry point: the multi-call dispatcher runs it for argv[0] "vmoveuser-mysql".
func vmoveuserMysqlMain() {
    Sys.exitFlushing(Admin.main("vmoveuser", Array(CommandLine.arguments.dropFirst()),
                                directory: { SQLBackend(home: $0, admin: $1) }))
}
