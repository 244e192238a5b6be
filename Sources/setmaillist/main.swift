// setmaillist: writes a binary mailing list from one entry per line (stdin).
// Run by the list's maintainer; trusts nothing but its input format.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(MailingList.setMain(CommandLine.arguments))
