// qmail-pw2u: turns a passwd file on stdin into users/assign lines on
// stdout (qmail-pw2u(8)), honouring HOME/users/include, exclude, mailnames,
// subusers and append. Run by the administrator; trusts those files.
import QmailCore
import QmailLocal

/// qmail-pw2u's entry point: the multi-call dispatcher runs it for argv[0] "qmail-pw2u".
func qmailPw2uMain() {
    Sys.exit(Pw2u.main(Array(rawArguments().dropFirst()), home: QmailHome.current()))
}
