// qmail-tcpok: makes qmail-remote forget every timeout (root or qmailr).
import QmailCore
import QmailSMTP

let home = QmailHome.current()
do {
    try TcpTo(queue: home.queue).clear()
} catch {
    Sys.warn("qmail-tcpok: fatal: unable to clear \(home.queue)/lock/tcpto: \(error)")
    Sys.exit(QmailExit.temporary)
}
Sys.exit(0)
