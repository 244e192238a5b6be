// qmail-setup: create a qmail home (qmail's `make setup` + `config-fast`).
// Usage: qmail-setup [--single-user] HOME FQDN
// Runs as root for a multi-user home; installs the programs found beside itself.
import QmailCore
import QmailSetup

/// qmail-setup's entry point: the multi-call dispatcher runs it for argv[0] "qmail-setup".
func qmailSetupMain() {
    Sys.exitFlushing(SetupCommand.main(CommandLine.arguments))  // print() output is buffered when stdout is a pipe
}
