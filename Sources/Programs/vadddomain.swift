// vadddomain: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VAddDomain.swift.
import QmailCore
import VHosting

/// vadddomain's entry point: the multi-call dispatcher runs it for argv[0] "vadddomain".
func vadddomainMain() {
    Sys.exitFlushing(Admin.main("vadddomain", Array(CommandLine.arguments.dropFirst())))
}
