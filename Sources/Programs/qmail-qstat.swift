// qmail-qstat: count the messages in the queue. Needs read access to the queue.
import QmailCore
import QmailAdmin

/// qmail-qstat's entry point: the multi-call dispatcher runs it for argv[0] "qmail-qstat".
func qmailQstatMain() {
    let home = QmailHome.current()
    do {
        try Sys.writeAll(1, try QueueReport.stat(root: home.queue))
        Sys.exit(0)
    } catch {
        Sys.warn("qmail-qstat: fatal: unable to read the queue: \(error)")
        Sys.exit(QmailExit.temporary)
    }
}
