// fastforward: forwards a message by a forwarding cdb (djb's fastforward).
// Runs from a .qmail file under qmail-local as that file's owner (the alias
// user for ~alias/.qmail-default); trusts the cdb and world-readable list
// files; takes RECIPIENT or DEFAULT/EXT+HOST, SENDER, DTLINE from qmail-local.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(FastForward.main(CommandLine.arguments))
