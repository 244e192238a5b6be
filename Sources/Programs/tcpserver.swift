// tcpserver: ucspi-tcp's TCP server. Started by root (to bind low ports),
// then runs as -u/-g or $UID/$GID with -U. Trusts its arguments and the
// rules cdb; the client's address and name only select rules.
import QmailCore
import QmailNet

/// tcpserver's entry point: the multi-call dispatcher runs it for argv[0] "tcpserver".
func tcpserverMain() {
    Sys.exit(TCPServer.main(Array(CommandLine.arguments.dropFirst())))
}
