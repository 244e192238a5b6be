// vfilterpolicy: a vpopmail-style admin command; run as root. Mailboxes in
// LDAP or MySQL: it execs vfilterpolicy-ldap/-mysql (control/userdirectory).
// Exit 0 done, 1 refused (nothing written), 111 system failure. See Admin+VFilterPolicy.swift.
import QmailCore
import VHosting

/// vfilterpolicy's entry point: the multi-call dispatcher runs it for argv[0] "vfilterpolicy".
func vfilterpolicyMain() {
    Sys.exitFlushing(Admin.main("vfilterpolicy", Array(CommandLine.arguments.dropFirst())))
}
