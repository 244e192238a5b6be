// tcprules: compiles tcpserver rules (stdin) into a cdb, through a temp
// file renamed into place. Run by the administrator; trusts its input.
import QmailCore
import QmailNet

Sys.exit(TCPRulesTools.tcprules(Array(CommandLine.arguments.dropFirst())))
