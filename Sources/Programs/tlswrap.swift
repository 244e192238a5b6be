// tlswrap: implicit TLS (pop3s on 995, smtps on 465) in front of a plain
// program: `tcpserver ... tlswrap qmail-popup ...`. Runs the TLS handshake
// on fds 0/1 with control/servercert.pem, then runs the program on a plain
// socket pair while it relays. Runs as tcpserver's user; trusts its
// arguments and the control files.
import QmailCore
import QmailTLS

/// tlswrap's entry point: the multi-call dispatcher runs it for argv[0] "tlswrap".
func tlswrapMain() {
    Sys.exit(TLSWrap.main(Array(CommandLine.arguments.dropFirst())))
}
