// vdeldomain: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VDelDomain.swift.
import QmailCore
import VHosting

/// vdeldomain's entry point: the multi-call dispatcher runs it for argv[0] "vdeldomain".
func vdeldomainMain() {
    Sys.exitFlushing(Admin.main("vdeldomain", Array(CommandLine.arguments.dropFirst())))
}
