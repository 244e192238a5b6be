// control/filter: what to scan and how to judge, for the site and per
// hosted domain, in simscan's simcontrol shape:
//
//   :virus=yes,spam=yes,tag=3,reject=10,auth=skip,maxsize=10485760
//   example.com:spam=no,quarantine=yes
//   .example.org:reject=15
//
// The line with an empty name is the site's; a domain's line overrides the
// site's values for recipients in that domain (".name" also covers its
// subdomains), and a mailbox's own policy (the user directory: DIR/vfilter
// of the file backend, sqFilterPolicy in LDAP, users.filter_policy in
// MySQL; set with vfilterpolicy) overrides its domain's.
// "quarantine=yes" keeps what would be refused in HOME/quarantine instead.
//
// One message gets one SMTP reply for all its recipients, so: scan for
// viruses or spam when any recipient wants it; each recipient then has its
// own outcome by its own levels (deliver, deliver tagged, quarantine,
// refuse). The message is refused only when it is refused for every
// recipient; otherwise it is accepted, queued for the delivering
// recipients, and the copy for all the others (refusing or quarantining)
// goes to the quarantine, so a recipient's policy is never overruled by
// another's and nothing accepted is lost. Spam headers go on the queued
// copy when any recipient it is for wants them. An unknown key or value
// makes the whole file unreadable: better to defer mail than to stop
// scanning by a typo.
import QmailCore

public struct FilterPolicy {
    /// The knobs a domain may set.
    public struct Judgement: Equatable {
        public var virus = true
        public var spam = true
        /// Spam headers from this score on; nil: on every scanned message
        /// ("tag=none" is infinity: never).
        public var tag: Double? = nil
        /// Refuse from this score on ("reject=none" is infinity: never);
        /// nil, the default: the engine decides, spamd from a score of
        /// 10 (twice SpamAssassin's 5.0), rspamd when its action is "reject".
        public var reject: Double? = nil
        /// Keep what would be refused in the quarantine instead.
        public var quarantine = false

        public init() {}

        /// Applies "key=value,..." (a mailbox's policy) over these values.
        public func applying(_ text: [UInt8]) throws -> Judgement {
            var j = self
            for (k, v) in try FilterPolicy.pairs(String(decoding: text, as: UTF8.self)) where try !j.set(k, v) {
                throw Invalid(line: k)
            }
            return j
        }
    }

    public enum FailureMode: Equatable { case defer_, accept }

    public var site = Judgement()
    public var domains: [String: Judgement] = [:]
    public var skipAuthenticated = true
    public var spamFailure = FailureMode.defer_
    public var virusFailure = FailureMode.defer_
    public var maxSize = 10 << 20
    public var refuseOversize = false

    public init() {}

    public struct Invalid: Error, CustomStringConvertible {
        let line: String
        public var description: String { "bad filter policy: \(line)" }
    }

    /// "k=v,k=v" as lower-case pairs.
    static func pairs(_ text: String) throws -> [(String, String)] {
        var pairs: [(String, String)] = []
        for item in text.split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces.lowercased() }
            guard kv.count == 2, !kv[0].isEmpty else { throw Invalid(line: text) }
            pairs.append((kv[0], kv[1]))
        }
        return pairs
    }

    public static func parse(_ data: [UInt8]) throws -> FilterPolicy {
        var p = FilterPolicy()
        var domainLines: [(String, [(String, String)])] = []
        for raw in Control.parseList(data) {
            let line = raw.string
            guard let colon = line.firstIndex(of: ":") else { throw Invalid(line: line) }
            let name = String(line[..<colon]).lowercased().trimmingSpaces
            let pairs = try pairs(String(line[line.index(after: colon)...]))
            if name.isEmpty {
                for (k, v) in pairs {
                    if try !p.site.set(k, v) && !(try p.setSite(k, v)) { throw Invalid(line: line) }
                }
            } else {
                domainLines.append((name, pairs))
            }
        }
        // Domain lines start from the site's values, wherever the site line is.
        for (name, pairs) in domainLines {
            var j = p.site
            for (k, v) in pairs where try !j.set(k, v) { throw Invalid(line: name) }
            p.domains[name] = j
        }
        return p
    }

    private mutating func setSite(_ k: String, _ v: String) throws -> Bool {
        func mode(_ v: String) throws -> FailureMode {
            switch v { case "defer": return .defer_; case "accept": return .accept; default: throw Invalid(line: v) }
        }
        switch k {
        case "auth":
            guard v == "skip" || v == "scan" else { return false }
            skipAuthenticated = v == "skip"
        case "spamfail": spamFailure = try mode(v)
        case "virusfail": virusFailure = try mode(v)
        case "maxsize":
            guard let n = Int(v), n > 0 else { return false }
            maxSize = n
        case "oversize":
            guard v == "pass" || v == "refuse" else { return false }
            refuseOversize = v == "refuse"
        default: return false
        }
        return true
    }

    /// The judgement for one recipient address.
    public func judgement(for recipient: [UInt8]) -> Judgement {
        guard let at = recipient.lastIndex(of: Ascii.at) else { return site }
        var domain = String(decoding: recipient[(at + 1)...], as: UTF8.self).lowercased()
        if let j = domains[domain] { return j }
        while let dot = domain.firstIndex(of: ".") {
            if let j = domains[String(domain[dot...])] { return j }
            domain = String(domain[domain.index(after: dot)...])
        }
        return site
    }
}

extension FilterPolicy.Judgement {
    /// Sets one domain-level key; false for a key that is not one.
    mutating func set(_ k: String, _ v: String) throws -> Bool {
        func yesNo(_ v: String) throws -> Bool {
            switch v { case "yes": return true; case "no": return false; default: throw FilterPolicy.Invalid(line: v) }
        }
        func level(_ v: String) throws -> Double? {
            if v == "none" { return .infinity }
            guard let d = Double(v), d.isFinite else { throw FilterPolicy.Invalid(line: v) }
            return d
        }
        switch k {
        case "virus": virus = try yesNo(v)
        case "spam": spam = try yesNo(v)
        case "tag": tag = try level(v)
        case "reject": reject = try level(v)
        case "quarantine": quarantine = try yesNo(v)
        default: return false
        }
        return true
    }
}
