// maildir2mbox: moves the messages of $MAILDIR into the mbox $MAIL through
// $MAILTMP (maildir2mbox(1)). Runs as the mailbox owner; trusts its
// environment.
import QmailCore
import QmailLocal

Sys.exit(Helpers.maildir2mbox())
