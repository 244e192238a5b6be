// forward: see forward(1). Runs as the delivering user from a .qmail file (splogger:
// as a logger); trusts its arguments and qmail-local's environment, not
// the message.
import QmailCore
import QmailLocal

Sys.exitFlushing(Helpers.forward(rawArguments()))
