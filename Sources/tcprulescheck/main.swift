// tcprulescheck: shows which rule tcpserver would apply to the client named
// by $TCPREMOTEIP, $TCPREMOTEHOST and $TCPREMOTEINFO.
import QmailCore
import QmailNet

Sys.exit(TCPRulesTools.tcprulescheck(Array(CommandLine.arguments.dropFirst())))
