// vpasswd: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VPasswd.swift.
import QmailCore
import VHosting

/// vpasswd's entry point: the multi-call dispatcher runs it for argv[0] "vpasswd".
func vpasswdMain() {
    Sys.exitFlushing(Admin.main("vpasswd", Array(CommandLine.arguments.dropFirst())))
}
