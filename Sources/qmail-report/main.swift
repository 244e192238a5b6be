// qmail-report: qmailanalog-style report of qmail-send logs (raw, multilog
// or splogger lines), with an optional SVG plot. Runs as anyone who can
// read the logs; trusts nothing in them.
import QmailCore
import QmailCtl

Sys.exitFlushing(ReportCommand.main(CommandLine.arguments))
