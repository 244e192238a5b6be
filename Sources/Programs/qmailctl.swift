// qmailctl: start, stop, status, queue, flush, reload, cdb and doctor for a
// qmail installation. Runs as root or as a single-user home's owner.
// Exit codes: 0 ok, 1 warnings, 2 problems, 100 usage, 111 cannot tell.
import QmailCore
import QmailCtl

/// qmailctl's entry point: the multi-call dispatcher runs it for argv[0] "qmailctl".
func qmailctlMain() {
    Sys.exitFlushing(QmailCtl.main(CommandLine.arguments))
}
