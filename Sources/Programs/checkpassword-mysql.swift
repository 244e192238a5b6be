// checkpassword-mysql: virtual mailboxes in MySQL/MariaDB (schemas/mysql.sql,
// control/sql*). Logins are "user@domain", "user%domain", or "user" in
// control/vdefaultdomain. Runs as root under qmail-popup and becomes the
// mailbox's user; trusts the qmail home and the database it names. The
// server down, slow or misconfigured: exit 111, never "wrong password".
//   qmail-popup HOST checkpassword-mysql qmail-pop3d Maildir
import Checkpassword
import QmailCore
import UserDirectorySQL

/// checkpassword-mysql's entry point: the multi-call dispatcher runs it for argv[0] "checkpassword-mysql".
func checkpasswordMysqlMain() {
    Sys.exit(Checkpassword.main(name: "checkpassword-mysql", argv: CommandLine.arguments) {
        SQLBackend(home: QmailHome.current())
    })
}
