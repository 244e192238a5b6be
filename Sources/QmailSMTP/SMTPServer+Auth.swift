// Sender authentication on intake: SPF (RFC 7208) at MAIL, DKIM (RFC 6376)
// and DMARC (RFC 7489) at the end of DATA, the results in one
// Authentication-Results field (RFC 8601) above our Received line, and a
// Received-SPF field beside it. Authenticated and RELAYCLIENT clients are
// not checked: they are ours.
//
// Policy (AuthPolicy): off, annotate or reject, for the site and per
// hosted (recipient) domain. Under reject an SPF fail is refused at RCPT
// with 550 (#5.7.23) and a DMARC fail whose policy is reject at the end of
// DATA with 550 (#5.7.1); a DNS failure that leaves the verdict open is
// 451, never a refusal. The message is held in memory until the end of
// DATA (at most databytes, else 32 MB) because DKIM needs all of it before
// the field can be written; past that size it streams unchecked.
import QmailCore
import QmailDKIM
import QmailDMARC
import QmailNet
import QmailSPF

public struct AuthPolicy {
    public enum Mode: String, Comparable {
        case off, annotate, reject
        public static func < (a: Mode, b: Mode) -> Bool { a.rank < b.rank }
        var rank: Int { self == .off ? 0 : self == .annotate ? 1 : 2 }
    }
    /// control/authpolicy's first line without a colon; off without the file.
    public var site: Mode = .off
    /// control/authpolicy's domain:mode lines, domains in lower case.
    public var domains: [String: Mode] = [:]
    /// control/authpolicy exists: DKIM and DMARC are checked as well as SPF.
    public var full = false
    /// $SPF, else (without control/authpolicy) control/spfbehavior: one
    /// SPF mode for every recipient, decided at MAIL as before.
    public var spfAtMail: Mode? = nil
    public var timeout = 5
    /// Our name in Authentication-Results: control/authservid, else control/me.
    public var authservID = "localhost"
    /// Bytes held for checking when databytes sets no limit.
    public var holdLimit = 32 << 20

    public init() {}

    /// Throws when a control file exists but cannot be read or has a bad line.
    public static func load(_ control: Control, greeting: [UInt8]) throws -> AuthPolicy {
        var p = AuthPolicy()
        if let lines = try control.raw("authpolicy").map({ $0.split(separator: Ascii.lf) }) {
            p.full = true
            for raw in lines {
                let line = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: " \t\r")
                if line.isEmpty || line.hasPrefix("#") { continue }
                let parts = line.split(separator: ":", maxSplits: 1).map { String($0).trimmingCharacters(in: " \t") }
                guard let mode = Mode(rawValue: parts.last!.lowercased()) else {
                    throw MailFailure.temporary("bad line in control/authpolicy: \(line)")
                }
                if parts.count == 1 { p.site = mode } else { p.domains[parts[0].lowercased()] = mode }
            }
        }
        if let env = Sys.getenv("SPF") {
            p.spfAtMail = Mode(rawValue: env.trimmingCharacters(in: " \t").lowercased()) ?? .off
        } else if !p.full, let word = try control.line("spfbehavior")?.string {
            p.spfAtMail = Mode(rawValue: word.trimmingCharacters(in: " \t").lowercased()) ?? .off
        }
        p.timeout = max(1, try control.number("timeoutspf", default: 5))
        let id = try control.line("authservid") ?? control.me() ?? Array(greeting.prefix { $0 != Ascii.space })
        p.authservID = id.string
        return p
    }

    /// The mode for mail to `recipient`: its domain's line, else the
    /// nearest parent domain's, else the site's.
    public func mode(for recipient: [UInt8]) -> Mode {
        guard full else { return .off }
        guard let at = recipient.lastIndex(of: Ascii.at) else { return site }
        var d = Substring(String(decoding: recipient[(at + 1)...], as: UTF8.self).lowercased())
        while true {
            if let m = domains[String(d)] { return m }
            guard let dot = d.firstIndex(of: ".") else { return site }
            d = d[d.index(after: dot)...]
        }
    }

    var spfWanted: Bool {
        if let m = spfAtMail { return m != .off }
        return full && (site != .off || domains.values.contains { $0 != .off })
    }
}

/// What the checks of one transaction found so far.
struct AuthState {
    var spf: SPFOutcome?
    var spfVerdict: SPFVerdict?
    var receivedSPF: [UInt8]?
    /// The strictest mode among the accepted recipients.
    var mode = AuthPolicy.Mode.off
}

extension SMTPServer {
    var checksClient: Bool { authUser == nil && config.relayClient == nil }

    func resolver() -> DNSResolver {
        let dns = DNSResolver.system()
        dns.timeout = config.auth.timeout
        dns.attempts = 1
        return dns
    }

    /// Checks SPF for a MAIL command; returns a refusal to send, or nil and
    /// keeps the verdict for RCPT and the header fields.
    func spfCheck(sender: [UInt8], helo: [UInt8]) -> String? {
        auth = AuthState()
        let policy = config.auth
        guard policy.spfWanted, checksClient, let ip = IPAddress(config.remoteIP.string) else { return nil }
        let receiver = String(config.greeting.string.prefix { $0 != " " })
        let v = SPFChecker(dns: resolver(), receiver: receiver).check(client: ip, sender: sender.string, helo: helo.string)
        auth.spfVerdict = v
        auth.receivedSPF = Array((v.receivedSPF(receiver: receiver, client: ip.unmapped, sender: sender.string, helo: helo.string) + "\n").utf8)
        let who = sender.isEmpty ? helo.string : sender.string
        let domain = sender.lastIndex(of: Ascii.at).map { String(decoding: sender[($0 + 1)...], as: UTF8.self) } ?? helo.string
        auth.spf = SPFOutcome(result: v.result.rawValue, identity: sender.isEmpty ? "helo" : "mailfrom",
                              value: who, domain: domain.lowercased())
        return policy.spfAtMail == .reject ? spfRefusal(v, ip) : nil
    }

    /// The refusal an SPF verdict earns under the reject policy, if any.
    func spfRefusal(_ v: SPFVerdict, _ ip: IPAddress) -> String? {
        switch v.result {
        case .fail:
            let why = (v.explanation ?? "SPF record of the sender's domain does not allow \(ip.unmapped)")
                .map { $0.isASCII && $0 >= " " && $0 != "\u{7f}" ? $0 : "?" }
            return SMTPReply.spfFail(String(why))
        case .temperror:
            return SMTPReply.spfTemporary
        default:
            return nil
        }
    }

    /// For an RCPT about to be accepted: the refusal its domain's policy
    /// asks for, else nil (and the transaction's mode is raised to it).
    func authRecipient(_ addr: [UInt8]) -> String? {
        guard checksClient else { return nil }
        let mode = config.auth.mode(for: addr)
        if mode == .reject, config.auth.spfAtMail == nil, let v = auth.spfVerdict, let ip = IPAddress(config.remoteIP.string),
           let refusal = spfRefusal(v, ip) {
            return refusal
        }
        auth.mode = max(auth.mode, mode)
        return nil
    }

    /// Whether DATA holds the message for DKIM and DMARC.
    var holdsMessage: Bool { config.auth.full && checksClient && auth.mode != .off }

    /// Checks the held message (LF lines). Returns the header fields to put
    /// above it, the message without forged Authentication-Results fields,
    /// and a refusal under the reject policy.
    func authVerdict(_ message: [UInt8]) -> (fields: [UInt8], message: [UInt8], refusal: String?) {
        let policy = config.auth
        let dns = AuthDNS(resolver: resolver())
        let crlf = AuthResults.withCRLF(message)
        let dkim = DKIMVerifier.verifyAll(crlf) { dns.dkimKey(selector: $0, domain: $1) }
        let header = AuthResults.header(crlf)
        let froms = DKIMCanonical.fields(header).filter { $0.name.elementsEqual("from".utf8) }.count
        let dmarc = DMARCChecker(dns: dns).check(fromDomain: DKIMSigner.fromDomain(header), fromCount: froms,
                                                 spfResult: auth.spf?.result, spfDomain: auth.spf?.domain ?? "",
                                                 dkim: dkim.map { ($0.result, $0.domain) })
        var fields = AuthResults.field(authservID: policy.authservID, spf: auth.spf, dkim: dkim, dmarc: dmarc)
        if let r = auth.receivedSPF { fields += r }
        var refusal: String? = nil
        if auth.mode == .reject {
            if dmarc.result == "fail" && dmarc.disposition == .reject {
                refusal = SMTPReply.dmarcReject(dmarc.fromDomain)
            } else if dmarc.result == "temperror" && (!dmarc.policyKnown || dmarc.requested == .reject) {
                refusal = SMTPReply.dmarcTemporary
            }
        }
        return (fields, AuthResults.removeForged(message, authservID: policy.authservID), refusal)
    }

    /// The fields for a message too large to hold: SPF only.
    func authFieldsUnchecked() -> [UInt8] {
        let skipped = DKIMSignatureResult(result: "policy", reason: "message too large to check")
        var fields = AuthResults.field(authservID: config.auth.authservID, spf: auth.spf, dkim: [skipped], dmarc: nil)
        if let r = auth.receivedSPF { fields += r }
        return fields
    }
}
