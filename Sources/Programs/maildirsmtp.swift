// maildirsmtp dir prefix host helohost (serialmail's): sends a Maildir's
// messages to host through SMTP. Runs as the Maildir's owner; trusts the
// Return-Path and Delivered-To lines qmail-local wrote at the top of each
// message. Exit 0 when every message was handled (sent, bounced, or left
// for a retry after a temporary rejection), 111 when the SMTP server could
// not be reached or the Maildir read, 100 on usage errors.
import QmailCore
import QmailSerial

/// maildirsmtp's entry point: the multi-call dispatcher runs it for argv[0] "maildirsmtp".
func maildirsmtpMain() {
    Sys.exitFlushing(MaildirSMTP.main(CommandLine.arguments))
}
