// vdkim: creates, rotates, lists and removes the DKIM keys qmail-remote
// signs with, and prints their DNS records; run as root (or as the owner
// of a single-user home). Exit 0 done, 1 refused, 111 system failure.
import QmailCore
import VHosting

/// vdkim's entry point: the multi-call dispatcher runs it for argv[0] "vdkim".
func vdkimMain() {
    Sys.exitFlushing(Admin.main("vdkim", Array(CommandLine.arguments.dropFirst())))
}
