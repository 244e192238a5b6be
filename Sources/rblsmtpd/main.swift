// rblsmtpd [-b] [-c] [-t timeout] [-r base] [-a base] smtpd...: refuses mail
// from clients listed in DNS blocklists, else runs smtpd. RBLSMTPD in the
// environment overrides the lookup (empty: allow; "-text": 553; "text": 451).
import QmailCore
import QmailNet

Sys.exit(RBLSMTPD.main(CommandLine.arguments).perform())
