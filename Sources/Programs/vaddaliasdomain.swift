// vaddaliasdomain: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VAddAliasDomain.swift.
import QmailCore
import VHosting

/// vaddaliasdomain's entry point: the multi-call dispatcher runs it for argv[0] "vaddaliasdomain".
func vaddaliasdomainMain() {
    Sys.exitFlushing(Admin.main("vaddaliasdomain", Array(CommandLine.arguments.dropFirst())))
}
