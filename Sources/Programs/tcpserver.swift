// tcpserver: ucspi-tcp's TCP server. Started by root (to bind low ports),
// then runs as -u/-g or $UID/$GID with -U. Trusts its arguments and the
// rules cdb; the client's address and name only select rules.
import QmailCore
import QmailNet

/// tcpserver's entry point: the multi-call dispatcher runs it for argv[0] "tcpserver".
func tcpserverMain() {
    // qmail-smtpd-auth is this same file: run in the connection's child, it
    // saves an exec per connection (1.3 ms of CPU: this file is dynamic).
    Sys.exit(TCPServer.main(Array(CommandLine.arguments.dropFirst())) { argv in
        MultiCall.isRunningFile(argv[0], named: "qmail-smtpd-auth") ? AuthSeparation.main : nil
    })
}
