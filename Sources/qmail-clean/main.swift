// qmail-clean: removes queue files on qmail-send's request and qmail-queue
// leftovers in pid/. Runs as qmailq; trusts qmail-send on fds 0/1.
import QmailCore
import QmailSend

Sys.exit(Clean.main())
