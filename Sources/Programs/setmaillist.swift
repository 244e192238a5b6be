// setmaillist: writes a binary mailing list from one entry per line (stdin).
// Run by the list's maintainer; trusts nothing but its input format.
import QmailForward
#if canImport(Glibc)
import Glibc
#endif

/// setmaillist's entry point: the multi-call dispatcher runs it for argv[0] "setmaillist".
func setmaillistMain() {
    exit(MailingList.setMain(CommandLine.arguments))
}
