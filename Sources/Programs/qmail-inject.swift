// qmail-inject: preprocesses a message (qmail-header(5)) and queues it
// through qmail-queue (or QMAILQUEUE). Runs as the invoking user; trusts
// only its qmail home's control files. Exit 0, 100 (bad usage or message)
// or 111 (temporary trouble).
import QmailCore
import QmailInject

/// qmail-inject's entry point: the multi-call dispatcher runs it for argv[0] "qmail-inject".
func qmailInjectMain() {
    Sys.exitFlushing(QmailInjectProgram.main(Array(CommandLine.arguments.dropFirst())))
}
