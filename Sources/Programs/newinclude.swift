// newinclude: compiles a sendmail :include: list into LIST.bin.
// Run by the list's maintainer; reads qmail's controls (and QMAILDEFAULT*).
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// newinclude's entry point: the multi-call dispatcher runs it for argv[0] "newinclude".
func newincludeMain() {
    exit(NewInclude.main(CommandLine.arguments))
}
