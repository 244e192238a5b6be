// printforward: prints a forwarding cdb (stdin) as setforward text.
// Run by anyone; refuses a malformed database with exit 100.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(PrintForward.main(CommandLine.arguments))
