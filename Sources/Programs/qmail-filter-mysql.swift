// qmail-filter-mysql: qmail-filter with mailboxes' own policies in MySQL; exec'd
// by qmail-filter when control/userdirectory says "mysql" (so qmail-filter
// itself never links the client library). Runs as qmail-filter's caller;
// same arguments, descriptors and exit codes. MySQL down: 451 for each message.
import QmailCore
import QmailFilter
import UserDirectorySQL

/// qmail-filter-mysql's entry point: the multi-call dispatcher runs it for argv[0] "qmail-filter-mysql".
func qmailFilterMysqlMain() {
    let session = CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--session"
    Sys.exit(FilterProgram.main(session: session, directory: { SQLBackend(home: $0) }))
}
