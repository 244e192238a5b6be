// qmail-send: delivers queued messages through qmail-lspawn and
// qmail-rspawn, bounces failures, retries deferrals. Runs as qmails,
// started by qmail-start with its pipes on fds 0-6; trusts the queue.
import QmailCore
import QmailSend

/// qmail-send's entry point: the multi-call dispatcher runs it for argv[0] "qmail-send".
func qmailSendMain() {
    Sys.exit(QueueSender.main())
}
