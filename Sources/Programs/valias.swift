// valias: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VAlias.swift.
import QmailCore
import VHosting

/// valias's entry point: the multi-call dispatcher runs it for argv[0] "valias".
func valiasMain() {
    Sys.exitFlushing(Admin.main("valias", Array(CommandLine.arguments.dropFirst())))
}
