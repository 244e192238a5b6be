// qmail-qmtpd: receives mail by QMTP on fds 0/1 (under tcpserver, as
// qmaild). Checks rcpthosts and RELAYCLIENT like qmail-smtpd.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailSMTP

/// qmail-qmtpd's entry point: the multi-call dispatcher runs it for argv[0] "qmail-qmtpd".
func qmailQmtpdMain() {
    signal(SIGPIPE, SIG_IGN)
    let home = QmailHome.current()
    _ = try? Sys.chdir(home.path)
    Sys.exit(QMTPServer.run(home: home))
}
