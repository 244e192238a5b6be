// qmail-qmqpc: a qmail-queue replacement for mini-qmail. Reads the message
// (fd 0) and envelope (fd 1) and sends them by QMQP to the first reachable
// server in control/qmqpservers; exits with qmail-queue's codes.
import QmailCore
import QmailSMTP

/// qmail-qmqpc's entry point: the multi-call dispatcher runs it for argv[0] "qmail-qmqpc".
func qmailQmqpcMain() {
    Sys.exit(QMQPClient.run(home: QmailHome.current()))
}
