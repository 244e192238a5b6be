// qmail-srs: signs or verifies one SRS address (SRSHelper.swift).
// Setuid root when installed: reads control/srssecrets, drops to its
// caller's uid and gid for good, then trusts nothing but its arguments.
// Exit 0 with the answer on fd 1; 100 refused; 111 temporary.
import QmailCore

Sys.exit(SRSHelper.main(CommandLine.arguments))
