// qmail-report: qmailanalog-style report of qmail-send logs (raw, multilog
// or splogger lines), with an optional SVG plot. Runs as anyone who can
// read the logs; trusts nothing in them.
import QmailCore
import QmailCtl

/// qmail-report's entry point: the multi-call dispatcher runs it for argv[0] "qmail-report".
func qmailReportMain() {
    Sys.exitFlushing(ReportCommand.main(CommandLine.arguments))
}
