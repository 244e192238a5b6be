// printmaillist: prints a binary mailing list (stdin) as setmaillist text.
// Run by anyone; refuses a malformed list with exit 100.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// printmaillist's entry point: the multi-call dispatcher runs it for argv[0] "printmaillist".
func printmaillistMain() {
    exit(MailingList.printMain(CommandLine.arguments))
}
