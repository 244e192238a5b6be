// qmail-spfquery: prints the SPF result for a client, sender and HELO name.
import QmailCore
import QmailSPF

Sys.exit(SPFQuery.main(CommandLine.arguments))
