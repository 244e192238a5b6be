// qmail-pop3d: serves the Maildir named by its argument (relative to the
// home directory checkpassword changed to) over POP3. Runs as the mailbox
// owner, never as root (refused, exit 111); trusts nothing the client sends.
import QmailCore
import QmailPOP3

/// qmail-pop3d's entry point: the multi-call dispatcher runs it for argv[0] "qmail-pop3d".
func qmailPop3dMain() {
    Sys.exit(Pop3dServer.main(Array(CommandLine.arguments.dropFirst())))
}
