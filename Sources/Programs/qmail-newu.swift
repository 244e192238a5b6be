// qmail-newu: compiles HOME/users/assign into HOME/users/cdb, atomically
// (qmail-newu(8), qmail-users(5)). Run by root (or the home's owner);
// trusts users/assign.
import QmailCore
import QmailLocal

/// qmail-newu's entry point: the multi-call dispatcher runs it for argv[0] "qmail-newu".
func qmailNewuMain() {
    Sys.exit(UsersAssign.newuMain(home: QmailHome.current()))
}
