// fastforward: forwards a message by a forwarding cdb (djb's fastforward).
// Runs from a .qmail file under qmail-local as that file's owner (the alias
// user for ~alias/.qmail-default); trusts the cdb and world-readable list
// files; takes RECIPIENT or DEFAULT/EXT+HOST, SENDER, DTLINE from qmail-local.
// argv is taken as C strings: CommandLine.arguments would build Swift
// strings and arrays in a program that lives a millisecond.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// fastforward's entry point: the multi-call dispatcher runs it for argv[0] "fastforward".
func fastforwardMain() {
    exit(FastForward.main(argc: CommandLine.argc, argv: CommandLine.unsafeArgv))
}
