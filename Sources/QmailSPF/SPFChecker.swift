// check_host() of RFC 7208: fetches a domain's SPF record and evaluates
// it for a client address. DNS work is bounded as section 4.6.4 asks: at
// most 10 terms that query DNS (include, a, mx, ptr, exists, redirect) per
// check, at most 2 lookups that find nothing, at most 10 MX or PTR names
// each, so a hostile record costs a bounded number of queries. NXDOMAIN
// and "no records" are answers; a timeout or SERVFAIL is temperror.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

public struct SPFVerdict: Equatable {
    public var result: SPFResult
    /// The exp= text on fail, else nil.
    public var explanation: String?
    /// The matching mechanism, or what went wrong, for logs and headers.
    public var detail: String
}

public final class SPFChecker {
    let dns: DNSResolver
    /// Our host name, for %{r}.
    public var receiver: String
    public var maxTerms = 10
    public var maxVoids = 2

    private var ip = IPAddress.unspecifiedV4
    private var sender = ""
    private var helo = ""
    private var terms = 0
    private var voids = 0

    public init(dns: DNSResolver, receiver: String) {
        self.dns = dns
        self.receiver = receiver
    }

    /// The SPF verdict for mail from `sender` (an empty one means the HELO
    /// identity, "postmaster@helo") sent by `client`.
    public func check(client: IPAddress, sender mailFrom: String, helo heloName: String) -> SPFVerdict {
        ip = client.unmapped
        helo = heloName
        sender = mailFrom.isEmpty ? "postmaster@" + heloName : mailFrom
        if !sender.contains("@") { sender = "postmaster@" + sender }
        if sender.hasPrefix("@") { sender = "postmaster" + sender }
        terms = 0
        voids = 0
        let domain = String(sender[sender.index(after: sender.lastIndex(of: "@")!)...])
        guard SPFChecker.isDomainName(domain) else {
            return SPFVerdict(result: .none, explanation: nil, detail: "\(domain) is not a domain name")
        }
        return checkHost(domain, explain: true)
    }

    static func isDomainName(_ d: String) -> Bool {
        var s = Substring(d)
        if s.hasSuffix(".") { s = s.dropLast() }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        return s.utf8.count <= 253 && labels.count >= 2 && labels.allSatisfy { !$0.isEmpty && $0.utf8.count <= 63 }
    }

    func checkHost(_ domain: String, explain: Bool) -> SPFVerdict {
        do {
            guard let text = try record(domain) else {
                return SPFVerdict(result: .none, explanation: nil, detail: "no SPF record for \(domain)")
            }
            let rec = try SPFRecord(parsing: text)
            for t in rec.terms {
                if try matches(t.mechanism, domain) {
                    var v = SPFVerdict(result: t.qualifier, explanation: nil, detail: "\(domain): \(t.text)")
                    if t.qualifier == .fail && explain, let e = rec.exp { v.explanation = explanation(e, domain) }
                    return v
                }
            }
            if let r = rec.redirect {
                try countTerm()
                let target = try expandDomain(r, domain)
                guard SPFChecker.isDomainName(target) else { throw SPFStop.perm("redirect to bad name \(target)") }
                var v = checkHost(target, explain: explain)
                if v.result == .none { v = SPFVerdict(result: .permerror, explanation: nil, detail: "redirect to \(target) found no SPF record") }
                return v
            }
            return SPFVerdict(result: .neutral, explanation: nil, detail: "\(domain): no mechanism matched")
        } catch SPFStop.temp(let why) {
            return SPFVerdict(result: .temperror, explanation: nil, detail: why)
        } catch SPFStop.perm(let why) {
            return SPFVerdict(result: .permerror, explanation: nil, detail: why)
        } catch {
            return SPFVerdict(result: .temperror, explanation: nil, detail: "\(error)")
        }
    }

    // MARK: DNS

    /// Records of `type`, [] for NXDOMAIN or a name that cannot be asked; throws temperror.
    func query(_ name: String, _ type: DNSType) throws -> [DNSRecord] {
        do {
            return try dns.lookup(Array(name.utf8), type)
        } catch DNSError.hard {
            return []
        } catch {
            throw SPFStop.temp("DNS lookup of \(name) failed")
        }
    }

    /// A lookup made for a mechanism: nothing found counts as a void lookup.
    func mechanismQuery(_ name: String, _ type: DNSType) throws -> [DNSRecord] {
        let r = try query(name, type)
        if r.isEmpty {
            voids += 1
            if voids > maxVoids { throw SPFStop.perm("more than \(maxVoids) void lookups") }
        }
        return r
    }

    func record(_ domain: String) throws -> String? {
        let found = try query(domain, .txt).compactMap { $0.text }.filter(SPFRecord.isSPF)
        if found.count > 1 { throw SPFStop.perm("\(domain) has more than one SPF record") }
        guard let text = found.first else { return nil }
        guard let s = String(validating: text, as: UTF8.self) else {
            throw SPFStop.perm("SPF record of \(domain) is not text")
        }
        return s
    }

    func addresses(_ name: String, v4: Bool, counted: Bool) throws -> [IPAddress] {
        let type: DNSType = v4 ? .a : .aaaa
        return try (counted ? mechanismQuery(name, type) : query(name, type)).compactMap { $0.ip }
    }

    func countTerm() throws {
        terms += 1
        if terms > maxTerms { throw SPFStop.perm("more than \(maxTerms) DNS-querying terms") }
    }

    // MARK: mechanisms

    func matches(_ m: SPFMechanism, _ domain: String) throws -> Bool {
        let v4 = !ip.isV6
        switch m {
        case .all:
            return true
        case .ip(let net, let prefix):
            return SPFChecker.inNetwork(ip, net, prefix)
        case .include(let spec):
            try countTerm()
            let target = try expandDomain(spec, domain)
            let v = checkHost(target, explain: false)
            switch v.result {
            case .pass: return true
            case .fail, .softfail, .neutral: return false
            case .temperror: throw SPFStop.temp(v.detail)
            case .permerror: throw SPFStop.perm(v.detail)
            case .none: throw SPFStop.perm("include of \(target) found no SPF record")
            }
        case .a(let spec, let p4, let p6):
            try countTerm()
            let target = try spec.map { try expandDomain($0, domain) } ?? domain
            return try addresses(target, v4: v4, counted: true).contains { SPFChecker.inNetwork(ip, $0, v4 ? p4 : p6) }
        case .mx(let spec, let p4, let p6):
            try countTerm()
            let target = try spec.map { try expandDomain($0, domain) } ?? domain
            let names = try mechanismQuery(target, .mx).compactMap { $0.name }.filter { !$0.isEmpty }
            if names.count > 10 { throw SPFStop.perm("\(target) has more than 10 MX records") }
            for n in names {
                if try addresses(n.string, v4: v4, counted: false).contains(where: { SPFChecker.inNetwork(ip, $0, v4 ? p4 : p6) }) {
                    return true
                }
            }
            return false
        case .ptr(let spec):
            try countTerm()
            let target = try spec.map { try expandDomain($0, domain) } ?? domain
            return try validatedNames().contains { SPFChecker.isWithin($0, target) }
        case .exists(let spec):
            try countTerm()
            let target = try expandDomain(spec, domain)
            return try !mechanismQuery(target, .a).isEmpty
        }
    }

    /// The client's PTR names whose addresses include the client (at most 10 tried).
    func validatedNames() throws -> [String] {
        let ptrs: [DNSRecord]
        do { ptrs = try mechanismQuery(ip.reverseName, .ptr) } catch SPFStop.temp { return [] }
        var out: [String] = []
        for r in ptrs.prefix(10) {
            guard let n = r.name?.string else { continue }
            if let ips = try? addresses(n, v4: !ip.isV6, counted: false), ips.contains(ip) { out.append(n) }
        }
        return out
    }

    static func isWithin(_ name: String, _ domain: String) -> Bool {
        let n = name.lowercased().trimmingSuffix("."), d = domain.lowercased().trimmingSuffix(".")
        return n == d || n.hasSuffix("." + d)
    }

    static func inNetwork(_ ip: IPAddress, _ net: IPAddress, _ prefix: Int) -> Bool {
        ip.isWithin(net, prefix: prefix)
    }

    // MARK: macros

    func macroValue(_ letter: Character, _ domain: String) throws -> String {
        switch letter {
        case "s": return sender
        case "l": return String(sender[..<sender.lastIndex(of: "@")!])
        case "o": return String(sender[sender.index(after: sender.lastIndex(of: "@")!)...])
        case "d": return domain
        case "i": return ip.isV6 ? ip.reverseLabels.split(separator: ".").reversed().joined(separator: ".") : ip.description
        case "c": return ip.description
        case "p":
            let names = (try? validatedNames()) ?? []
            return names.first(where: { SPFChecker.isWithin($0, domain) }) ?? names.first ?? "unknown"
        case "v": return ip.isV6 ? "ip6" : "in-addr"
        case "h": return helo
        case "r": return receiver
        case "t": return String(time(nil))
        default: throw SPFStop.perm("unknown macro \(letter)")
        }
    }

    /// Expands a domain-spec; names longer than 253 lose labels on the left.
    func expandDomain(_ spec: String, _ domain: String) throws -> String {
        var d = try SPFMacro.expand(spec, exp: false) { try self.macroValue($0, domain) }
        if d.hasSuffix(".") { d.removeLast() }
        while d.utf8.count > 253, let dot = d.firstIndex(of: ".") { d = String(d[d.index(after: dot)...]) }
        return d
    }

    /// The exp= text, or nil when anything about it goes wrong.
    func explanation(_ spec: String, _ domain: String) -> String? {
        guard let target = try? expandDomain(spec, domain),
              let txt = try? query(target, .txt), txt.count == 1, let t = txt[0].text else { return nil }
        guard t.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return nil }
        return try? SPFMacro.expand(t.string, exp: true) { try self.macroValue($0, domain) }
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}
