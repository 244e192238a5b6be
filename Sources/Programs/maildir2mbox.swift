// maildir2mbox: moves the messages of $MAILDIR into the mbox $MAIL through
// $MAILTMP (maildir2mbox(1)). Runs as the mailbox owner; trusts its
// environment.
import QmailCore
import QmailLocal

/// maildir2mbox's entry point: the multi-call dispatcher runs it for argv[0] "maildir2mbox".
func maildir2mboxMain() {
    Sys.exit(Helpers.maildir2mbox())
}
