// SPF on intake (RFC 7208): qmail-smtpd checks the MAIL FROM domain (the
// HELO name when MAIL FROM is empty) against the client address, adds a
// Received-SPF field above its Received line, and under the reject policy
// refuses a fail at MAIL with 550 (#5.7.23) and a DNS temperror with 451
// (#4.7.24). Authenticated and RELAYCLIENT clients are not checked.
//
// Policy: $SPF (off, annotate, reject) overrides control/spfbehavior; with
// neither, SPF is off, so a host with no DNS pays nothing. Each query waits
// control/timeoutspf seconds (default 5), once per server.
import QmailCore
import QmailNet
import QmailSPF

public struct SPFPolicy {
    public enum Mode: String { case off, annotate, reject }
    public var mode: Mode = .off
    public var timeout = 5

    public init(mode: Mode = .off, timeout: Int = 5) {
        self.mode = mode
        self.timeout = timeout
    }

    /// Throws when a control file exists but cannot be read.
    public static func load(_ control: Control) throws -> SPFPolicy {
        var p = SPFPolicy()
        let word = try Sys.getenv("SPF") ?? control.line("spfbehavior")?.string ?? "off"
        p.mode = Mode(rawValue: word.trimmingCharacters(in: " \t").lowercased()) ?? .off
        p.timeout = max(1, try control.number("timeoutspf", default: 5))
        return p
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

extension SMTPServer {
    /// Checks SPF for a MAIL command; returns a refusal to send, or nil and
    /// leaves the Received-SPF field in `spfField`.
    func spfCheck(sender: [UInt8], helo: [UInt8], authenticated: Bool) -> String? {
        spfField = nil
        let policy = config.spf
        guard policy.mode != .off, !authenticated, config.relayClient == nil,
              let ip = IPAddress(config.remoteIP.string) else { return nil }
        let dns = DNSResolver.system()
        dns.timeout = policy.timeout
        dns.attempts = 1
        let receiver = String(config.greeting.string.prefix { $0 != " " })
        let v = SPFChecker(dns: dns, receiver: receiver).check(client: ip, sender: sender.string, helo: helo.string)
        spfField = Array((v.receivedSPF(receiver: receiver, client: ip.unmapped, sender: sender.string, helo: helo.string) + "\n").utf8)
        guard policy.mode == .reject else { return nil }
        switch v.result {
        case .fail:
            let why = (v.explanation ?? "SPF record of the sender's domain does not allow \(ip.unmapped)")
                .map { $0.isASCII && $0 >= " " && $0 != "\u{7f}" ? $0 : "?" }
            return "550 sorry, \(String(why)) (#5.7.23)\r\n"
        case .temperror:
            return "451 temporary DNS failure checking SPF (#4.7.24)\r\n"
        default:
            return nil
        }
    }
}
