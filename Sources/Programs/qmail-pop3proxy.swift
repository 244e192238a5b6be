// qmail-pop3proxy: relays a POP3 session to the mailbox's home host
// (issue 22). checkpassword runs it in place of qmail-pop3d, as the
// mailbox's user, with the login on fd 3. Trusts its fd 3 and the control
// files; copies what the client and the home host say without acting on it.
import QmailCore
import QmailPOP3

/// qmail-pop3proxy's entry point: the multi-call dispatcher runs it for argv[0] "qmail-pop3proxy".
func qmailPop3proxyMain() {
    Sys.exit(Pop3Proxy.main(Array(CommandLine.arguments.dropFirst())))
}
