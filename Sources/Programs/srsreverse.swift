// srsreverse: delivers a bounce sent to an SRS address back to the sender
// the address stands for (SRSReverse.swift). Runs under qmail-local from
// the SRS domain's .qmail-default, as that user; trusts qmail-local's
// DEFAULT, NEWSENDER and DTLINE. Exit 0 forwarded; 100 forged or expired
// address; 111 temporary.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// srsreverse's entry point: the multi-call dispatcher runs it for argv[0] "srsreverse".
func srsreverseMain() {
    exit(SRSReverse.main(CommandLine.arguments))
}
