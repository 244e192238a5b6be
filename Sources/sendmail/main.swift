// sendmail: qmail's sendmail interface. Maps sendmail's options onto
// qmail-inject (or qmail-qread for -bp / mailq, qmail-smtpd for -bs) and
// execs it. Runs as the invoking user.
import QmailCore
import QmailInject

Sys.exitFlushing(Sendmail.main(CommandLine.arguments))
