// qmail-popup: reads a POP3 username and password (USER/PASS, APOP, AUTH
// PLAIN; STLS first when configured) and runs the checkpassword program
// named in its arguments, which runs qmail-pop3d. Runs as the user
// tcpserver starts it as (root, so checkpassword can switch users).
// Trusts its arguments and environment (set by tcpserver and tcprules);
// never the client.
import QmailCore
import QmailPopup

/// qmail-popup's entry point: the multi-call dispatcher runs it for argv[0] "qmail-popup".
func qmailPopupMain() {
    Sys.exit(PopupServer.main(Array(CommandLine.arguments.dropFirst())))
}
