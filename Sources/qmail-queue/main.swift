// qmail-queue: queue a mail message (qmail-queue(8)).
// Message on fd 0, envelope on fd 1. Setuid qmailq when installed as root;
// trusts only its two descriptors.
import QmailCore
import QmailQueue

Sys.exit(QueueWriter.main())
