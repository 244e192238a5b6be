// setforward: compiles setforward's table text (stdin) into a forwarding cdb.
// Run by the table's maintainer; trusts nothing but its input format.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// setforward's entry point: the multi-call dispatcher runs it for argv[0] "setforward".
func setforwardMain() {
    exit(SetForward.main(CommandLine.arguments))
}
