// qmail-remote host sender recip...: delivers the message on descriptor 0
// to host by SMTP (MX lookup, or control/smtproutes) and writes the report
// qmail-rspawn reads on descriptor 1. Runs as qmailr; trusts control files.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailSMTP

/// qmail-remote's entry point: the multi-call dispatcher runs it for argv[0] "qmail-remote".
func qmailRemoteMain() {
    signal(SIGPIPE, SIG_IGN)
    let args = CommandLine.arguments
    func finish(_ report: [UInt8]) -> Never {
        _ = try? Sys.writeAll(1, report)
        Sys.exit(0)
    }
    if args.count < 4 { finish(Array("DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0".utf8)) }
    let home = QmailHome.current()
    guard (try? Sys.chdir(home.path)) != nil else {
        finish(Array("ZUnable to switch to home directory. (#4.3.0)\n\0".utf8))
    }
    guard let config = try? RemoteConfig.load(home: home) else {
        finish(Array("ZUnable to read control files. (#4.3.0)\n\0".utf8))
    }
    let remote = Remote(config: config, resolver: DNSResolver.system())
    if !config.noTLS(for: Array(args[1].utf8)) { remote.tls = SMTPTLS.client() }
    finish(remote.deliver(host: Array(args[1].utf8), sender: Array(args[2].utf8),
                          recipients: args[3...].map { Array($0.utf8) }, input: 0))
}
