// qmail-qread: list the messages in the queue. Needs read access to the queue (root or qmails).
import QmailCore
import QmailAdmin

/// qmail-qread's entry point: the multi-call dispatcher runs it for argv[0] "qmail-qread".
func qmailQreadMain() {
    let home = QmailHome.current()
    do {
        try Sys.writeAll(1, try QueueReport.read(root: home.queue))
        Sys.exit(0)
    } catch {
        Sys.warn("qmail-qread: fatal: unable to read the queue: \(error)")
        Sys.exit(QmailExit.temporary)
    }
}
