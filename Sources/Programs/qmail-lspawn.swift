// qmail-lspawn: runs qmail-local for each local delivery qmail-send asks
// for, as the recipient's user (found via users/cdb or qmail-getpw). Runs
// as root in a multi-user installation; trusts qmail-send on fds 0/1.
//   qmail-lspawn defaultdelivery
import QmailCore
import QmailSend

/// qmail-lspawn's entry point: the multi-call dispatcher runs it for argv[0] "qmail-lspawn".
func qmailLspawnMain() {
    Sys.exit(LocalSpawnMain.main(CommandLine.arguments.map { Array($0.utf8) }))
}
