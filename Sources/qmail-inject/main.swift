// qmail-inject: preprocesses a message (qmail-header(5)) and queues it
// through qmail-queue (or QMAILQUEUE). Runs as the invoking user; trusts
// only its qmail home's control files. Exit 0, 100 (bad usage or message)
// or 111 (temporary trouble).
import QmailCore
import QmailInject

Sys.exitFlushing(QmailInjectProgram.main(Array(CommandLine.arguments.dropFirst())))
