// checkpassword: system accounts (passwd/shadow), a drop-in for djb's
// checkpassword. Runs as root under qmail-popup; see Checkpassword.swift.
//   qmail-popup HOST checkpassword qmail-pop3d Maildir
import Checkpassword
import QmailCore
import UserDirectory

/// checkpassword's entry point: the multi-call dispatcher runs it for argv[0] "checkpassword".
func checkpasswordMain() {
    Sys.exit(Checkpassword.main(name: "checkpassword", argv: CommandLine.arguments) { SystemBackend() })
}
