// vconvert: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VConvert.swift.
import QmailCore
import VHosting

/// vconvert's entry point: the multi-call dispatcher runs it for argv[0] "vconvert".
func vconvertMain() {
    Sys.exitFlushing(Admin.main("vconvert", Array(CommandLine.arguments.dropFirst())))
}
