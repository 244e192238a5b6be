// qmail-qmqpd: receives one message by QMQP on fds 0/1 (under tcpserver, as
// qmaild) and hands it to qmail-queue. Trust the client's envelope: run it
// only for hosts allowed to relay (tcprules).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailSMTP

/// qmail-qmqpd's entry point: the multi-call dispatcher runs it for argv[0] "qmail-qmqpd".
func qmailQmqpdMain() {
    signal(SIGPIPE, SIG_IGN)
    let home = QmailHome.current()
    _ = try? Sys.chdir(home.path)
    Sys.exit(QMQPServer.run(home: home))
}
