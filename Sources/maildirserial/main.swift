// maildirserial: send a Maildir through a serialmail client (serialmail's).
// Runs as the Maildir's owner. Exit 0, 100 usage, 111 temporary trouble.
import QmailCore
import QmailSerial

Sys.exitFlushing(MaildirSerial.main(CommandLine.arguments))
