// qmail-rcptcheck address: the recipient lookup for qmail-smtpd (RCPTCHECK
// or control/rcptcheck). Exit 0 known, 100 unknown, 111 temporary. Runs as
// qmail-smtpd's user (qmaild), which must be able to read HOME/users and the
// domains' vpasswd.cdb; anything unreadable answers 111, never 100.
import QmailCore
import QmailRcptCheck
import UserDirectory

/// qmail-rcptcheck's entry point: the multi-call dispatcher runs it for argv[0] "qmail-rcptcheck".
func qmailRcptcheckMain() {
    let args = CommandLine.arguments
    guard args.count == 2 else {
        Sys.warn("qmail-rcptcheck: usage: qmail-rcptcheck address")
        Sys.exit(QmailExit.temporary)
    }
    Sys.exit(RcptCheck.check(address: Array(args[1].utf8), backend: FileBackend(home: QmailHome.current())))
}
