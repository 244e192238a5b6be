// preline: see preline(1). Runs as the delivering user from a .qmail file (splogger:
// as a logger); trusts its arguments and qmail-local's environment, not
// the message.
import QmailCore
import QmailLocal

/// preline's entry point: the multi-call dispatcher runs it for argv[0] "preline".
func prelineMain() {
    Sys.exitFlushing(Helpers.preline(rawArguments()))
}
