// vsetuserquota: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VSetUserQuota.swift.
import QmailCore
import VHosting

/// vsetuserquota's entry point: the multi-call dispatcher runs it for argv[0] "vsetuserquota".
func vsetuserquotaMain() {
    Sys.exitFlushing(Admin.main("vsetuserquota", Array(CommandLine.arguments.dropFirst())))
}
