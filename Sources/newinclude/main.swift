// newinclude: compiles a sendmail :include: list into LIST.bin.
// Run by the list's maintainer; reads qmail's controls (and QMAILDEFAULT*).
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(NewInclude.main(CommandLine.arguments))
