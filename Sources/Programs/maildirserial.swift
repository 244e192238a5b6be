// maildirserial: send a Maildir through a serialmail client (serialmail's).
// Runs as the Maildir's owner. Exit 0, 100 usage, 111 temporary trouble.
import QmailCore
import QmailSerial

/// maildirserial's entry point: the multi-call dispatcher runs it for argv[0] "maildirserial".
func maildirserialMain() {
    Sys.exitFlushing(MaildirSerial.main(CommandLine.arguments))
}
