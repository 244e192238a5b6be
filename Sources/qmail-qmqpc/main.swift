// qmail-qmqpc: a qmail-queue replacement for mini-qmail. Reads the message
// (fd 0) and envelope (fd 1) and sends them by QMQP to the first reachable
// server in control/qmqpservers; exits with qmail-queue's codes.
import QmailCore
import QmailSMTP

Sys.exit(QMQPClient.run(home: QmailHome.current()))
