// qmail-local: delivers one message to one user as dot-qmail(5) says.
// Started by qmail-lspawn already running as the recipient user, message
// on fd 0 (seekable). Trusts its arguments (from qmail-lspawn) and the
// user's own .qmail files; the message and envelope are untrusted.
import QmailCore
import QmailLocal
import VDelivery

/// qmail-local's entry point: the multi-call dispatcher runs it for argv[0] "qmail-local".
func qmailLocalMain() {
    let argv = rawArguments()
    guard let args = LocalArguments.parse(Array(argv.dropFirst())) else {
        say(2, LocalDelivery.usage + "\n")
        Sys.exit(QmailExit.permanent)
    }
    // A hosted domain's `| HOME/bin/vdelivermail ...` line runs in this process.
    do {
        try LocalDelivery.run(args, inProcess: VDeliver.inProcess)
        Sys.exit(QmailExit.success)
    } catch let stop as LocalStop {
        say(2, stop.text)
        Sys.exit(stop.exitCode)
    } catch {
        say(2, "\(error)\n")
        Sys.exit(QmailExit.temporary)
    }
}
