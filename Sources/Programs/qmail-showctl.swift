// qmail-showctl: show the qmail configuration. Read-only; runs as anyone.
import QmailCore
import QmailAdmin

/// qmail-showctl's entry point: the multi-call dispatcher runs it for argv[0] "qmail-showctl".
func qmailShowctlMain() {
    let text = ShowCtl.render(home: QmailHome.current())
    do { try Sys.writeAll(1, text) } catch { Sys.exit(QmailExit.temporary) }
    Sys.exit(0)
}
