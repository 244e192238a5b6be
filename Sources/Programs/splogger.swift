// splogger: see splogger(1). Runs as the delivering user from a .qmail file (splogger:
// as a logger); trusts its arguments and qmail-local's environment, not
// the message.
import QmailCore
import QmailLocal

/// splogger's entry point: the multi-call dispatcher runs it for argv[0] "splogger".
func sploggerMain() {
    Sys.exitFlushing(Helpers.splogger(rawArguments()))
}
