// qmail-quarantine list | show ID | release ID | delete ID: the messages
// qmail-filter kept in HOME/quarantine. Runs as qmaild (the quarantine's
// owner) or root; trusts QMAIL_HOME and its arguments, nothing else.
import QmailCore
import QmailFilter

/// qmail-quarantine's entry point: the multi-call dispatcher runs it for argv[0] "qmail-quarantine".
func qmailQuarantineMain() {
    Sys.exitFlushing(QuarantineCommand.main(Array(CommandLine.arguments.dropFirst())))
}
