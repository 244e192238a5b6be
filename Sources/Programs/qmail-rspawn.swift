// qmail-rspawn: runs qmail-remote for each remote delivery qmail-send asks
// for. Runs as qmailr; trusts qmail-send on fds 0/1.
import QmailCore
import QmailSend

/// qmail-rspawn's entry point: the multi-call dispatcher runs it for argv[0] "qmail-rspawn".
func qmailRspawnMain() {
    Sys.exit(RemoteSpawnMain.main())
}
