// vadduser: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VAddUser.swift.
import QmailCore
import VHosting

/// vadduser's entry point: the multi-call dispatcher runs it for argv[0] "vadduser".
func vadduserMain() {
    Sys.exitFlushing(Admin.main("vadduser", Array(CommandLine.arguments.dropFirst())))
}
