// qmail-tcpto: lists the hosts qmail-remote recently timed out on.
// Runs as any user able to read queue/lock/tcpto.
import QmailCore
import QmailSMTP

/// qmail-tcpto's entry point: the multi-call dispatcher runs it for argv[0] "qmail-tcpto".
func qmailTcptoMain() {
    let home = QmailHome.current()
    _ = try? Sys.writeAll(1, TcpTo(queue: home.queue).report())
    Sys.exit(0)
}
