// vmoddomlimits: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VModDomLimits.swift.
import QmailCore
import VHosting

/// vmoddomlimits's entry point: the multi-call dispatcher runs it for argv[0] "vmoddomlimits".
func vmoddomlimitsMain() {
    Sys.exitFlushing(Admin.main("vmoddomlimits", Array(CommandLine.arguments.dropFirst())))
}
