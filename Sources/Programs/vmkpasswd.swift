// vmkpasswd: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VMkPasswd.swift.
import QmailCore
import VHosting

/// vmkpasswd's entry point: the multi-call dispatcher runs it for argv[0] "vmkpasswd".
func vmkpasswdMain() {
    Sys.exitFlushing(Admin.main("vmkpasswd", Array(CommandLine.arguments.dropFirst())))
}
