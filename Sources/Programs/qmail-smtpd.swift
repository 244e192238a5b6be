// qmail-smtpd: receives mail by SMTP on descriptors 0/1 (run under
// tcpserver, as qmaild) and hands each message to qmail-queue.
// Trusts: control files, and the environment set by tcpserver/tcprules
// (TCPREMOTEIP, RELAYCLIENT, DATABYTES, SMTPAUTH, FORCETLS, RCPTCHECK,
// QMAILQUEUE). Usage: qmail-smtpd [hostname checkpassword prog...] (AUTH).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailSMTP

/// qmail-smtpd's entry point: the multi-call dispatcher runs it for argv[0] "qmail-smtpd".
func qmailSmtpdMain() {
    signal(SIGPIPE, SIG_IGN)
    let home = QmailHome.current()
    let config: SMTPConfig
    do {
        try Sys.chdir(home.path)
        config = try SMTPConfig.load(home: home, arguments: CommandLine.arguments)
    } catch {
        _ = try? Sys.writeAll(1, SMTPReply.startupControlsUnreadable)
        Sys.exit(1)
    }
    let channel = Channel(stream: FdStream(inFd: 0, outFd: 1), timeout: config.timeout)
    let server = SMTPServer(config: config, channel: channel, tls: SMTPTLS.starter(home: home))
    Sys.exit(server.run())
}
