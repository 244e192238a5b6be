// newaliases: compiles /etc/aliases (or -f FILE) into FILE.cdb, atomically.
// Run by the administrator (root); trusts its input only to be an aliases
// file; reads qmail's me/defaulthost/defaultdomain/plusdomain controls.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// newaliases's entry point: the multi-call dispatcher runs it for argv[0] "newaliases".
func newaliasesMain() {
    exit(Newaliases.main(CommandLine.arguments))
}
