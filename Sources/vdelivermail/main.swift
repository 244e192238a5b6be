// vdelivermail: delivery agent for hosted domains, run by qmail-local as the
// domain's user from DIR/.qmail-default:  | vdelivermail '' bounce-no-mailbox
// Exit 0 delivered, 100 bounce, 111 retry. See VDeliver.swift.
import QmailCore
import VHosting

if let failure = VDeliver.main(argv: CommandLine.arguments) {
    Sys.warn(failure.description)
    Sys.exit(failure.exitCode)
}
Sys.exit(0)
