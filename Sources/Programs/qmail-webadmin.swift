// qmail-webadmin: the web administration (HTTPS, loopback unless
// configured). Started as the v* commands are (root, or the owner of a
// single-user home), it forks its network process (TLS, HTTP: nobody, or
// that owner) and stays as the helper that checks logins and makes the
// changes; trusts the qmail home. See Sources/QmailWeb.
import QmailCore
import QmailWeb

/// qmail-webadmin's entry point: the multi-call dispatcher runs it for argv[0] "qmail-webadmin".
func qmailWebadminMain() {
    // start() forks, so it runs while the program has one thread
    let role = WebAdmin.start(Array(CommandLine.arguments.dropFirst()))
    Sys.exitFlushing(role.run())
}
