// printforward: prints a forwarding cdb (stdin) as setforward text.
// Run by anyone; refuses a malformed database with exit 100.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// printforward's entry point: the multi-call dispatcher runs it for argv[0] "printforward".
func printforwardMain() {
    exit(PrintForward.main(CommandLine.arguments))
}
