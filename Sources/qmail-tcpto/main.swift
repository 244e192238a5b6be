// qmail-tcpto: lists the hosts qmail-remote recently timed out on.
// Runs as any user able to read queue/lock/tcpto.
import QmailCore
import QmailSMTP

let home = QmailHome.current()
_ = try? Sys.writeAll(1, TcpTo(queue: home.queue).report())
Sys.exit(0)
