// vmoddomain: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VModDomain.swift.
import QmailCore
import VHosting

/// vmoddomain's entry point: the multi-call dispatcher runs it for argv[0] "vmoddomain".
func vmoddomainMain() {
    Sys.exitFlushing(Admin.main("vmoddomain", Array(CommandLine.arguments.dropFirst())))
}
