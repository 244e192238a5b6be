// printmaillist: prints a binary mailing list (stdin) as setmaillist text.
// Run by anyone; refuses a malformed list with exit 100.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

exit(MailingList.printMain(CommandLine.arguments))
