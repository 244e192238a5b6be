// qmail-webadmin: the web administration (HTTPS, loopback unless
// configured). Started as the v* commands are (root, or the owner of a
// single-user home), it forks its network process (TLS, HTTP: nobody, or
// that owner) and stays as the helper that checks logins and makes the
// changes; trusts the qmail home. See Sources/QmailWeb.
import QmailCore
import QmailWeb

// start() forks; it must run before the first await (one thread).
let role = WebAdmin.start(Array(CommandLine.arguments.dropFirst()))
Sys.exitFlushing(await role.run())
