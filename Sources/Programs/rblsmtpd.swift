// rblsmtpd [-b] [-c] [-t timeout] [-r base] [-a base] smtpd...: refuses mail
// from clients listed in DNS blocklists, else runs smtpd. RBLSMTPD in the
// environment overrides the lookup (empty: allow; "-text": 553; "text": 451).
import QmailCore
import QmailNet

/// rblsmtpd's entry point: the multi-call dispatcher runs it for argv[0] "rblsmtpd".
func rblsmtpdMain() {
    Sys.exit(RBLSMTPD.main(CommandLine.arguments).perform())
}
