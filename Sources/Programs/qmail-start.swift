// qmail-start: starts qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean
// and an optional logger, each under its own uid, then becomes qmail-send.
// Run by root (or the owner of a single-user home) from HOME/rc.
//   qmail-start defaultdelivery [ logger arg ... ]
import QmailCore
import QmailSend

/// qmail-start's entry point: the multi-call dispatcher runs it for argv[0] "qmail-start".
func qmailStartMain() {
    Sys.exit(Start.main(CommandLine.arguments.map { Array($0.utf8) }))
}
