// qmail-spfquery: prints the SPF result for a client, sender and HELO name.
import QmailCore
import QmailSPF

/// qmail-spfquery's entry point: the multi-call dispatcher runs it for argv[0] "qmail-spfquery".
func qmailSpfqueryMain() {
    Sys.exit(SPFQuery.main(CommandLine.arguments))
}
