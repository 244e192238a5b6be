// condredirect: see condredirect(1). Runs as the delivering user from a .qmail file (splogger:
// as a logger); trusts its arguments and qmail-local's environment, not
// the message.
import QmailCore
import QmailLocal

/// condredirect's entry point: the multi-call dispatcher runs it for argv[0] "condredirect".
func condredirectMain() {
    Sys.exitFlushing(Helpers.condredirect(rawArguments()))
}
