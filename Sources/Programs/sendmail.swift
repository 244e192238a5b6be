// sendmail: qmail's sendmail interface. Maps sendmail's options onto
// qmail-inject (or qmail-qread for -bp / mailq, qmail-smtpd for -bs) and
// execs it. Runs as the invoking user.
import QmailCore
import QmailInject

/// sendmail's entry point: the multi-call dispatcher runs it for argv[0] "sendmail".
func sendmailMain() {
    Sys.exitFlushing(Sendmail.main(CommandLine.arguments))
}
