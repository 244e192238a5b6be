// qmail-newu: compiles HOME/users/assign into HOME/users/cdb, atomically
// (qmail-newu(8), qmail-users(5)). Run by root (or the home's owner);
// trusts users/assign.
import QmailCore
import QmailLocal

Sys.exit(UsersAssign.newuMain(home: QmailHome.current()))
