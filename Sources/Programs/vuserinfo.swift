// vuserinfo: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VUserInfo.swift.
import QmailCore
import VHosting

/// vuserinfo's entry point: the multi-call dispatcher runs it for argv[0] "vuserinfo".
func vuserinfoMain() {
    Sys.exitFlushing(Admin.main("vuserinfo", Array(CommandLine.arguments.dropFirst())))
}
