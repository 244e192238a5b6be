// qmail-showctl: show the qmail configuration. Read-only; runs as anyone.
import QmailCore
import QmailAdmin

let text = ShowCtl.render(home: QmailHome.current())
do { try Sys.writeAll(1, text) } catch { Sys.exit(QmailExit.temporary) }
Sys.exit(0)
