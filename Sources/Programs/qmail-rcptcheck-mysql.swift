// qmail-rcptcheck-mysql: qmail-rcptcheck with the recipients in MySQL; exec'd by
// qmail-rcptcheck when control/userdirectory says "mysql" (so qmail-rcptcheck
// itself never links the client library). Runs as qmail-smtpd's user; same
// argument and exit codes. MySQL down or slow: 111, qmail-smtpd says 451.
import QmailCore
import QmailRcptCheck
import UserDirectorySQL

/// qmail-rcptcheck-mysql's entry point: the multi-call dispatcher runs it for argv[0] "qmail-rcptcheck-mysql".
func qmailRcptcheckMysqlMain() {
    Sys.exit(RcptCheck.main(argv: CommandLine.arguments, directory: { SQLBackend(home: $0) }))
}
