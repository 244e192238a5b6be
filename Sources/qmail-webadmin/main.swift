// qmail-webadmin: the web administration (HTTPS, loopback unless
// configured). Runs as the v* commands do (root, or the owner of a
// single-user home); trusts the qmail home. See Sources/QmailWeb.
import QmailCore
import QmailWeb

Sys.exitFlushing(await WebAdmin.main(Array(CommandLine.arguments.dropFirst())))
