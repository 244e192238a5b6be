// checkpassword: system accounts (passwd/shadow), a drop-in for djb's
// checkpassword. Runs as root under qmail-popup; see Checkpassword.swift.
//   qmail-popup HOST checkpassword qmail-pop3d Maildir
import Checkpassword
import QmailCore
import UserDirectory

Sys.exit(Checkpassword.main(name: "checkpassword", argv: CommandLine.arguments) { SystemBackend() })
