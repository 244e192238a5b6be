// tcprulescheck: shows which rule tcpserver would apply to the client named
// by $TCPREMOTEIP, $TCPREMOTEHOST and $TCPREMOTEINFO.
import QmailCore
import QmailNet

/// tcprulescheck's entry point: the multi-call dispatcher runs it for argv[0] "tcprulescheck".
func tcprulescheckMain() {
    Sys.exit(TCPRulesTools.tcprulescheck(Array(CommandLine.arguments.dropFirst())))
}
