// qmail-vacation: a system account's out-of-office responder, run by
// qmail-local as that account from ~/.qmail:  |HOME/bin/qmail-vacation
// It answers the envelope sender once per interval (RFC 3834) through
// qmail-queue, and always exits 0: the message is delivered already.
// Trusts qmail-local's environment and the account's ~/.vacation.
// See VacationResponder.swift; vvacation turns it on and off.
import QmailCore
import VDelivery

/// qmail-vacation's entry point: the multi-call dispatcher runs it for argv[0] "qmail-vacation".
func qmailVacationMain() {
    Sys.exit(VacationResponder.programMain(CommandLine.arguments))
}
