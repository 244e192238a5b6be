// vdominfo: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VDomInfo.swift.
import QmailCore
import VHosting

/// vdominfo's entry point: the multi-call dispatcher runs it for argv[0] "vdominfo".
func vdominfoMain() {
    Sys.exitFlushing(Admin.main("vdominfo", Array(CommandLine.arguments.dropFirst())))
}
