// qmail-local: delivers one message to one user as dot-qmail(5) says.
// Started by qmail-lspawn already running as the recipient user, message
// on fd 0 (seekable). Trusts its arguments (from qmail-lspawn) and the
// user's own .qmail files; the message and envelope are untrusted.
// With -W alone it is qmail-lspawn's delivery worker for its uid (LocalWorker).
import QmailCore
import QmailLocal
import VDelivery

/// qmail-local's entry point: the multi-call dispatcher runs it for argv[0] "qmail-local".
func qmailLocalMain() {
    let argv = rawArguments()
    // A hosted domain's `| HOME/bin/vdelivermail ...` line runs in this process.
    if argv.count == 2 && argv[1] == LocalWorkerProtocol.flag { Sys.exit(LocalWorker.serve(inProcess: VDeliver.inProcess)) }
    Sys.exit(LocalDelivery.main(Array(argv.dropFirst()), inProcess: VDeliver.inProcess))
}
