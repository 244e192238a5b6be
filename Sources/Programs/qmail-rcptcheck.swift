// qmail-rcptcheck address: the recipient lookup for qmail-smtpd (RCPTCHECK
// or control/rcptcheck). Exit 0 known, 100 unknown, 111 temporary. Runs as
// qmail-smtpd's user (qmaild), which must be able to read HOME/users and the
// domains' vpasswd.cdb; anything unreadable answers 111, never 100. With
// control/userdirectory ldap or mysql it execs qmail-rcptcheck-ldap/-mysql.
import QmailCore
import QmailRcptCheck

/// qmail-rcptcheck's entry point: the multi-call dispatcher runs it for argv[0] "qmail-rcptcheck".
func qmailRcptcheckMain() {
    Sys.exit(RcptCheck.main(argv: CommandLine.arguments))
}
