// qmail-clean: removes queue files on qmail-send's request and qmail-queue
// leftovers in pid/. Runs as qmailq; trusts qmail-send on fds 0/1.
import QmailCore
import QmailSend

/// qmail-clean's entry point: the multi-call dispatcher runs it for argv[0] "qmail-clean".
func qmailCleanMain() {
    Sys.exit(Clean.main())
}
