// dot-forward: follows a user's sendmail-style .forward (djb's dot-forward).
// Runs as the user under qmail-local, in the user's home; runs the user's
// programs as the user; takes USER, HOST, NEWSENDER, UFLINE, RPLINE, DTLINE
// from qmail-local. Exit 0: go on with .qmail; 99: done; 100/111: failure.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// dot-forward's entry point: the multi-call dispatcher runs it for argv[0] "dot-forward".
func dotForwardMain() {
    exit(DotForward.main(CommandLine.arguments))
}
