// qmail-start: starts qmail-send, qmail-lspawn, qmail-rspawn, qmail-clean
// and an optional logger, each under its own uid, then becomes qmail-send.
// Run by root (or the owner of a single-user home) from HOME/rc.
//   qmail-start defaultdelivery [ logger arg ... ]
import QmailCore
import QmailSend

Sys.exit(Start.main(CommandLine.arguments.map { Array($0.utf8) }))
