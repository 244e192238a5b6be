// swift-qmail-tls: the unprivileged programs that link OpenSSL (SMTP,
// POP3, QMTP, QMQP), with the shared C library and no NSS lookups.
// HOME/bin holds it under each name below (MultiCall.swift); which program
// is in which file is Package.swift's `programs`, and the programs qmail
// installs with mode 0700 (Programs.all) start with MultiCall.ownerOnly.
import QmailCore

switch MultiCall.program {
case "qmail-pop3d": qmailPop3dMain()
case "qmail-pop3proxy": qmailPop3proxyMain()
case "qmail-popup": qmailPopupMain()
case "qmail-qmqpc": qmailQmqpcMain()
case "qmail-qmqpd": qmailQmqpdMain()
case "qmail-qmtpd": qmailQmtpdMain()
case "qmail-remote": qmailRemoteMain()
case "qmail-smtpd": qmailSmtpdMain()
case "qmail-tcpok": qmailTcpokMain()
case "qmail-tcpto": qmailTcptoMain()
case "tlswrap": tlswrapMain()
default: MultiCall.other("swift-qmail-tls", [
    "qmail-pop3d",
    "qmail-pop3proxy",
    "qmail-popup",
    "qmail-qmqpc",
    "qmail-qmqpd",
    "qmail-qmtpd",
    "qmail-remote",
    "qmail-smtpd",
    "qmail-tcpok",
    "qmail-tcpto",
    "tlswrap",
])
}
MultiCall.done()
