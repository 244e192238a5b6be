// tcprules: compiles tcpserver rules (stdin) into a cdb, through a temp
// file renamed into place. Run by the administrator; trusts its input.
import QmailCore
import QmailNet

/// tcprules's entry point: the multi-call dispatcher runs it for argv[0] "tcprules".
func tcprulesMain() {
    Sys.exit(TCPRulesTools.tcprules(Array(CommandLine.arguments.dropFirst())))
}
