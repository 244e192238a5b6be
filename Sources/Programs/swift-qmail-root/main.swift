// swift-qmail-root: the programs that run as root, started by a trusted
// parent that also picks argv[0] (rc, a service's run script, qmail-lspawn,
// qmail-popup, tcpserver).
// HOME/bin holds it under each name below (MultiCall.swift); which program
// is in which file is Package.swift's `programs`, and the programs qmail
// installs with mode 0700 (Programs.all) start with MultiCall.ownerOnly.
import QmailCore

switch MultiCall.program {
case "checkpassword": checkpasswordMain()
case "checkpassword-file": checkpasswordFileMain()
case "qmail-getpw": qmailGetpwMain()
case "qmail-lspawn": MultiCall.ownerOnly("swift-qmail-root"); qmailLspawnMain()
case "qmail-smtpd-auth": qmailSmtpdAuthMain()
case "qmail-start": MultiCall.ownerOnly("swift-qmail-root"); qmailStartMain()
case "tcpserver": tcpserverMain()
default: MultiCall.other("swift-qmail-root", [
    "checkpassword",
    "checkpassword-file",
    "qmail-getpw",
    "qmail-lspawn",
    "qmail-smtpd-auth",
    "qmail-start",
    "tcpserver",
])
}
MultiCall.done()
