// vdelivermail: delivery agent for hosted domains, run by qmail-local as the
// domain's user from DIR/.qmail-default:  | vdelivermail '' bounce-no-mailbox
// (qmail-local runs that line in-process when it names this program).
// Exit 0 delivered, 100 bounce, 111 retry. See VDeliver.swift.
import QmailCore
import VDelivery

/// vdelivermail's entry point: the multi-call dispatcher runs it for argv[0] "vdelivermail".
func vdelivermailMain() {
    Sys.exit(VDeliver.exitCode(argv: CommandLine.arguments))
}
