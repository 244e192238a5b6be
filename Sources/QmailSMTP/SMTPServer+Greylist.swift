// qmail-smtpd's greylisting step at RCPT (Greylist.swift says what it does).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

extension SMTPServer {
    /// The refusal for a greylisted recipient, or nil when it may go on.
    func greylistCheck(sender: [UInt8], recipient: [UInt8], authenticated: Bool) -> String? {
        guard let policy = config.greylist, !authenticated, config.relayClient == nil,
              Sys.getenv("NOGREYLIST") == nil,
              let ip = IPAddress(config.remoteIP.string) else { return nil }
        if policy.whitelists(client: ip) || policy.whitelists(recipient: recipient) { return nil }
        let who = "\(ip.unmapped) from <\(sender.string)> to <\(recipient.string)>"
        switch Greylist(home: config.home, policy: policy).check(client: ip, sender: sender, recipient: recipient) {
        case .pass:
            return nil
        case .wait(let seconds):
            Sys.warn("qmail-smtpd: pid \(getpid()) greylisted \(who), retry in \(seconds)s")
            return SMTPReply.greylisted
        case nil:
            Sys.warn("qmail-smtpd: pid \(getpid()) greylist unusable (\(Sys.strerror(errno))), passing \(who)")
            return nil
        }
    }
}
