// qmail-newmrh: compile control/morercpthosts into morercpthosts.cdb. Run by root.
import QmailCore
import QmailAdmin

Sys.exit(NewMrh.run(home: QmailHome.current()))
