// setforward: compiles setforward's table text (stdin) into a forwarding cdb.
// Run by the table's maintainer; trusts nothing but its input format.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(SetForward.main(CommandLine.arguments))
