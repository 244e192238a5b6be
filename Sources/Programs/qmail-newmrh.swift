// qmail-newmrh: compile control/morercpthosts into morercpthosts.cdb. Run by root.
import QmailCore
import QmailAdmin

/// qmail-newmrh's entry point: the multi-call dispatcher runs it for argv[0] "qmail-newmrh".
func qmailNewmrhMain() {
    Sys.exit(NewMrh.run(home: QmailHome.current()))
}
