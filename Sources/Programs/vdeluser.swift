// vdeluser: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VDelUser.swift.
import QmailCore
import VHosting

/// vdeluser's entry point: the multi-call dispatcher runs it for argv[0] "vdeluser".
func vdeluserMain() {
    Sys.exitFlushing(Admin.main("vdeluser", Array(CommandLine.arguments.dropFirst())))
}
