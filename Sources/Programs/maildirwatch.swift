// maildirwatch: watch $MAILDIR for new mail (qmail's). Runs as the user.
import QmailCore
import QmailSerial

/// maildirwatch's entry point: the multi-call dispatcher runs it for argv[0] "maildirwatch".
func maildirwatchMain() {
    Sys.exitFlushing(MaildirWatch.main(CommandLine.arguments))
}
