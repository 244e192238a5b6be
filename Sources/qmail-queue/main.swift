// qmail-queue: queue a mail message (qmail-queue(8)).
// Message on fd 0, envelope on fd 1. Setuid qmailq when installed as root;
// trusts only its descriptors. With the single argument "--session" it
// queues a series of messages framed on fd 0 (QueueSession, for qmail-smtpd).
import QmailCore
import QmailQueue

let session = CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "--session"
Sys.exit(QueueWriter.main(session: session))
