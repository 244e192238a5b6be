// vmoveuser: moves a hosted mailbox to another cluster host (and, with -R,
// receives one); run as root. Exit 0 done, 1 refused (nothing written),
// 111 system failure (rerun it: every step resumes). See Admin+VMoveUser.swift.
import QmailCore
import VHosting

/// vmoveuser's entry point: the multi-call dispatcher runs it for argv[0] "vmoveuser".
func vmoveuserMain() {
    Sys.exitFlushing(Admin.main("vmoveuser", Array(CommandLine.arguments.dropFirst())))
}
