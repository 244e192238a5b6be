// qmail-smtpd-auth: runs qmail-smtpd as an unprivileged uid and answers its
// SMTP AUTH questions with a checkpassword program run with our privileges.
// Usage: qmail-smtpd-auth -u uid -g gid checkpassword [args ...] -- qmail-smtpd [args ...]
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// qmail-smtpd-auth's entry point: the multi-call dispatcher runs it for argv[0] "qmail-smtpd-auth".
func qmailSmtpdAuthMain() {
    exit(AuthSeparation.main(CommandLine.arguments))
}
