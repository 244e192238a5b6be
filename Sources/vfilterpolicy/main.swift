// vfilterpolicy: a vpopmail-style admin command for the file backend; run as root.
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VFilterPolicy.swift.
import QmailCore
import VHosting

Sys.exitFlushing(Admin.main("vfilterpolicy", Array(CommandLine.arguments.dropFirst())))
