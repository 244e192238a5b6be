// newaliases: see the header of its implementation in Sources/QmailForward.
// Runs as the invoking user (from a .qmail file, or by hand); not setuid.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(Newaliases.main(CommandLine.arguments))
