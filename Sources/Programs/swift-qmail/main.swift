// swift-qmail: the unprivileged programs that need no NSS and no shared
// C library, in one fully static file (every hot program is here).
// sendmail also answers as mailq, the name sites link to it.
// HOME/bin holds it under each name below (MultiCall.swift); which program
// is in which file is Package.swift's `programs`, and the programs qmail
// installs with mode 0700 (Programs.all) start with MultiCall.ownerOnly.
import QmailCore

switch MultiCall.program {
case "bouncesaying": bouncesayingMain()
case "condredirect": condredirectMain()
case "datemail": datemailMain()
case "dot-forward": dotForwardMain()
case "except": exceptMain()
case "fastforward": fastforwardMain()
case "forward": forwardMain()
case "maildir2mbox": maildir2mboxMain()
case "maildirmake": maildirmakeMain()
case "maildirserial": maildirserialMain()
case "maildirwatch": maildirwatchMain()
case "newaliases": newaliasesMain()
case "newinclude": newincludeMain()
case "predate": predateMain()
case "preline": prelineMain()
case "printforward": printforwardMain()
case "printmaillist": printmaillistMain()
case "qmail-clean": qmailCleanMain()
case "qmail-filter": qmailFilterMain()
case "qmail-inject": qmailInjectMain()
case "qmail-local": qmailLocalMain()
case "qmail-newmrh": MultiCall.ownerOnly("swift-qmail"); qmailNewmrhMain()
case "qmail-newu": MultiCall.ownerOnly("swift-qmail"); qmailNewuMain()
case "qmail-pop3d": qmailPop3dMain()
case "qmail-pw2u": qmailPw2uMain()
case "qmail-qread": qmailQreadMain()
case "qmail-qstat": qmailQstatMain()
case "qmail-quarantine": MultiCall.ownerOnly("swift-qmail"); qmailQuarantineMain()
case "qmail-rcptcheck": qmailRcptcheckMain()
case "qmail-rspawn": qmailRspawnMain()
case "qmail-send": qmailSendMain()
case "qmail-showctl": qmailShowctlMain()
case "qmail-spfquery": qmailSpfqueryMain()
case "qmail-vacation": qmailVacationMain()
case "rblsmtpd": rblsmtpdMain()
case "sendmail", "mailq": sendmailMain()
case "setforward": setforwardMain()
case "setmaillist": setmaillistMain()
case "splogger": sploggerMain()
case "srsreverse": srsreverseMain()
case "tcp-env": tcpEnvMain()
case "tcprules": tcprulesMain()
case "tcprulescheck": tcprulescheckMain()
case "vdelivermail": vdelivermailMain()
default: MultiCall.other("swift-qmail", [
    "bouncesaying",
    "condredirect",
    "datemail",
    "dot-forward",
    "except",
    "fastforward",
    "forward",
    "maildir2mbox",
    "maildirmake",
    "maildirserial",
    "maildirwatch",
    "newaliases",
    "newinclude",
    "predate",
    "preline",
    "printforward",
    "printmaillist",
    "qmail-clean",
    "qmail-filter",
    "qmail-inject",
    "qmail-local",
    "qmail-newmrh",
    "qmail-newu",
    "qmail-pop3d",
    "qmail-pw2u",
    "qmail-qread",
    "qmail-qstat",
    "qmail-quarantine",
    "qmail-rcptcheck",
    "qmail-rspawn",
    "qmail-send",
    "qmail-showctl",
    "qmail-spfquery",
    "qmail-vacation",
    "rblsmtpd",
    "sendmail",
    "setforward",
    "setmaillist",
    "splogger",
    "srsreverse",
    "tcp-env",
    "tcprules",
    "tcprulescheck",
    "vdelivermail",
])
}
MultiCall.done()
