// qmail-smtpd-auth: runs qmail-smtpd as an unprivileged uid and answers its
// SMTP AUTH questions with a checkpassword program run with our privileges.
// Usage: qmail-smtpd-auth -u uid -g gid checkpassword [args ...] -- qmail-smtpd [args ...]
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

exit(AuthSeparation.main(CommandLine.arguments))
