// qmail-getpw: prints user, uid, gid, home, dash, ext (each NUL-ended) for
// a local part, from the passwd database (qmail-getpw(8)). Run by
// qmail-lspawn (root, or the home's owner in a single-user home); trusts
// the passwd database and QMAIL_HOME; the local part is untrusted.
import QmailCore
import QmailLocal

/// qmail-getpw's entry point: the multi-call dispatcher runs it for argv[0] "qmail-getpw".
func qmailGetpwMain() {
    Sys.exit(Getpw.main(rawArguments()))
}
