// qmail-pw2u: turns a passwd file on stdin into users/assign lines on
// stdout (qmail-pw2u(8)), honouring HOME/users/include, exclude, mailnames,
// subusers and append. Run by the administrator; trusts those files.
import QmailCore
import QmailLocal

Sys.exit(Pw2u.main(Array(rawArguments().dropFirst()), home: QmailHome.current()))
