// DMARC (RFC 7489) for one message: the policy of the From: domain, and
// whether an SPF or DKIM pass is aligned with it.
//
// The organizational domain comes from DNS, not from the Public Suffix
// List (which we do not ship and would have to keep current): as in
// DMARCbis' "tree walk", the names from the domain up to its last two
// labels are asked for _dmarc records (at most 5 names), and the
// organizational domain is the shortest of them that publishes one; a
// record with psd=y marks a public suffix, whose child is then the
// organizational domain. A domain with no record in its walk is its own
// organizational domain. Relaxed alignment: both domains have the same
// organizational domain; strict: they are equal.
import QmailCore

public struct DMARCVerdict: Equatable {
    /// pass, fail, none, temperror or permerror (RFC 8601 names).
    public var result: String
    public var fromDomain = ""
    /// The policy the record asks for (p=, or sp= for a subdomain).
    public var requested: DMARCPolicy = .none
    /// What to do after pct= sampling: the policy on fail, else none.
    public var disposition: DMARCPolicy = .none
    /// The policy record was found (false when its lookup failed).
    public var policyKnown = false
    public var reason = ""
}

public final class DMARCChecker {
    let dns: AuthDNS
    /// Draws 0..<100 for pct= sampling.
    public var sample: () -> Int = { Int.random(in: 0..<100) }
    static let maxWalk = 5

    public init(dns: AuthDNS) { self.dns = dns }

    enum Lookup { case found(DMARCRecord), absent, temporary }

    func record(_ domain: String) -> Lookup {
        switch dns.txt("_dmarc." + domain) {
        case .temporary: return .temporary
        case .records(let rs):
            let valid = rs.compactMap(DMARCRecord.init)
            return valid.count == 1 ? .found(valid[0]) : .absent  // several: none applies (RFC 7489 6.6.3)
        }
    }

    /// `domain` and its parents down to two labels, at most maxWalk names.
    static func walk(_ domain: String) -> [String] {
        var labels = domain.split(separator: ".").map(String.init)
        var out: [String] = []
        if labels.count > maxWalk + 1 { out.append(domain); labels = Array(labels.suffix(maxWalk)) }
        while labels.count >= 2 && out.count < maxWalk {
            out.append(labels.joined(separator: "."))
            labels.removeFirst()
        }
        return out
    }

    /// The organizational domain of `domain`; nil when DNS did not answer.
    func organizational(_ domain: String) -> String? {
        let names = DMARCChecker.walk(domain)
        var org = domain
        for (i, name) in names.enumerated() {
            switch record(name) {
            case .temporary: return nil
            case .absent: continue
            case .found(let r):
                if r.publicSuffix { return i > 0 ? names[i - 1] : domain }
                org = name
            }
        }
        return org
    }

    func aligned(_ authDomain: String, _ from: String, fromOrg: String, strict: Bool) -> Bool? {
        let a = authDomain.lowercased()
        if a == from { return true }
        if strict { return false }
        // Cheap refusal: organizational domains have at least two labels in common.
        guard a.hasSuffix("." + fromOrg) || a == fromOrg || fromOrg.hasSuffix("." + a) else { return false }
        guard let org = organizational(a) else { return nil }
        return org == fromOrg
    }

    /// The verdict for a message from `fromDomain` (nil: no usable single
    /// From: address), given the SPF result for `spfDomain` and the DKIM
    /// results.
    public func check(fromDomain: String?, fromCount: Int, spfResult: String?, spfDomain: String,
                      dkim: [(result: String, domain: String)]) -> DMARCVerdict {
        guard fromCount == 1, let from = fromDomain?.lowercased() else {
            return DMARCVerdict(result: "permerror", reason: "not exactly one From: domain")
        }
        var v = DMARCVerdict(result: "none", fromDomain: from)
        // Policy: the From: domain's own record, else the nearest parent's sp= (or p=).
        var found: (name: String, record: DMARCRecord)? = nil
        for name in DMARCChecker.walk(from) {
            switch record(name) {
            case .temporary: v.result = "temperror"; v.reason = "DNS lookup of _dmarc.\(name) failed"; return v
            case .absent: continue
            case .found(let r): found = (name, r)
            }
            if found != nil { break }
        }
        guard let (policyName, rec) = found else { v.reason = "no DMARC record"; return v }
        v.policyKnown = true
        v.requested = policyName == from ? rec.policy : (rec.subdomainPolicy ?? rec.policy)
        guard let org = organizational(from) else { v.result = "temperror"; v.reason = "DNS lookup failed"; return v }

        var unknown = false
        for d in dkim where d.result == "pass" {
            switch aligned(d.domain, from, fromOrg: org, strict: rec.strictDKIM) {
            case true?: v.result = "pass"; v.reason = "DKIM d=\(d.domain) aligned"; return v
            case nil: unknown = true
            default: break
            }
        }
        if spfResult == "pass" {
            switch aligned(spfDomain, from, fromOrg: org, strict: rec.strictSPF) {
            case true?: v.result = "pass"; v.reason = "SPF \(spfDomain) aligned"; return v
            case nil: unknown = true
            default: break
            }
        }
        // A check that could not be made might have passed: not a fail.
        if unknown || spfResult == "temperror" || dkim.contains(where: { $0.result == "temperror" }) {
            v.result = "temperror"; v.reason = "DNS lookup failed"; return v
        }
        v.result = "fail"
        v.reason = "no aligned SPF or DKIM pass"
        v.disposition = sample() < rec.percent ? v.requested : DMARCVerdict.downgraded(v.requested)
        return v
    }
}

extension DMARCVerdict {
    /// RFC 7489 6.6.4: a message left out by pct= gets the next milder policy.
    static func downgraded(_ p: DMARCPolicy) -> DMARCPolicy {
        p == .reject ? .quarantine : .none
    }
}
