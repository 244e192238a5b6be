// maildirmake: see maildirmake(1). Runs as the delivering user from a .qmail file (splogger:
// as a logger); trusts its arguments and qmail-local's environment, not
// the message.
import QmailCore
import QmailLocal

/// maildirmake's entry point: the multi-call dispatcher runs it for argv[0] "maildirmake".
func maildirmakeMain() {
    Sys.exitFlushing(Helpers.maildirmake(rawArguments()))
}
