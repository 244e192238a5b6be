// qmail-send: delivers queued messages through qmail-lspawn and
// qmail-rspawn, bounces failures, retries deferrals. Runs as qmails,
// started by qmail-start with its pipes on fds 0-6; trusts the queue.
import QmailCore
import QmailSend

Sys.exit(QueueSender.main())
