// vvacation: shows, sets or clears a mailbox's vacation reply; run as root
// (or as the owner of a single-user home). Exit 0 done, 1 refused (nothing
// written), 111 system failure. See Admin+VVacation.swift.
import QmailCore
import VHosting

/// vvacation's entry point: the multi-call dispatcher runs it for argv[0] "vvacation".
func vvacationMain() {
    Sys.exitFlushing(Admin.main("vvacation", Array(CommandLine.arguments.dropFirst())))
}
