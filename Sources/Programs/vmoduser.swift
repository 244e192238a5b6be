// vmoduser: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VModUser.swift.
import QmailCore
import VHosting

/// vmoduser's entry point: the multi-call dispatcher runs it for argv[0] "vmoduser".
func vmoduserMain() {
    Sys.exitFlushing(Admin.main("vmoduser", Array(CommandLine.arguments.dropFirst())))
}
