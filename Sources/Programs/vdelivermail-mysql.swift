// vdelivermail-mysql: vdelivermail with its recipients in MySQL/MariaDB;
// exec'd by vdelivermail when control/userdirectory says "mysql" (so
// vdelivermail itself never links libmariadb). Runs as the domain's user;
// exit 0/100/111 as vdelivermail. Database down or slow: 111, mail stays queued.
import QmailCore
import UserDirectorySQL
import VDelivery

/// vdelivermail-mysql's entry point: the multi-call dispatcher runs it for argv[0] "vdelivermail-mysql".
func vdelivermailMysqlMain() {
    Sys.exit(VDeliver.exitCode(argv: CommandLine.arguments, backend: { SQLBackend(home: $0) }))
}
