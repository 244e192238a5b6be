// qmail-rspawn: runs qmail-remote for each remote delivery qmail-send asks
// for. Runs as qmailr; trusts qmail-send on fds 0/1.
import QmailCore
import QmailSend

Sys.exit(RemoteSpawnMain.main())
