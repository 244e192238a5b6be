// checkpassword-file: virtual mailboxes of the embedded file backend
// (HOME/users/vdomains.cdb, DIR/vpasswd.cdb). Logins are "user@domain",
// "user%domain", or "user" in control/vdefaultdomain. Runs as root under
// qmail-popup and becomes the domain's user; trusts the qmail home.
//   qmail-popup HOST checkpassword-file qmail-pop3d Maildir
import Checkpassword
import QmailCore
import UserDirectory

/// checkpassword-file's entry point: the multi-call dispatcher runs it for argv[0] "checkpassword-file".
func checkpasswordFileMain() {
    Sys.exit(Checkpassword.main(name: "checkpassword-file", argv: CommandLine.arguments) {
        FileBackend(home: QmailHome.current())
    })
}
