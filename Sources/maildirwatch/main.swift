// maildirwatch: watch $MAILDIR for new mail (qmail's). Runs as the user.
import QmailCore
import QmailSerial

Sys.exitFlushing(MaildirWatch.main(CommandLine.arguments))
