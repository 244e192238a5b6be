// qmail-filter: a content filter in qmail-queue's place (QMAILQUEUE, or
// qmail-smtpd's queue session): scans each message with clamd and spamd or
// rspamd, then queues it with HOME/bin/qmail-queue or refuses it.
// Runs as its caller (qmaild under qmail-smtpd); trusts its descriptors,
// control/ and the caller's environment (SMTPAUTHUSER, TCPREMOTEIP).
import QmailCore
import QmailFilter

/// qmail-filter's entry point: the multi-call dispatcher runs it for argv[0] "qmail-filter".
func qmailFilterMain() {
    let session = CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--session"
    Sys.exit(FilterProgram.main(session: session))
}
