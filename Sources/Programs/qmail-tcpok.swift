// qmail-tcpok: makes qmail-remote forget every timeout (root or qmailr).
import QmailCore
import QmailSMTP

/// qmail-tcpok's entry point: the multi-call dispatcher runs it for argv[0] "qmail-tcpok".
func qmailTcpokMain() {
    let home = QmailHome.current()
    do {
        try TcpTo(queue: home.queue).clear()
    } catch {
        Sys.warn("qmail-tcpok: fatal: unable to clear \(home.queue)/lock/tcpto: \(error)")
        Sys.exit(QmailExit.temporary)
    }
    Sys.exit(0)
}
