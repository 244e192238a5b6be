// The syntax of an SPF record (RFC 7208 section 4.6 and 12): terms split on
// spaces, each a mechanism with a qualifier or a name=value modifier. The
// whole record is parsed before anything is evaluated, so a syntax error
// anywhere gives permerror, whatever an earlier term would have matched.
import QmailCore
import QmailNet

public enum SPFResult: String, Sendable {
    case none, neutral, pass, fail, softfail, temperror, permerror
}

/// Why evaluation stopped early: carried up to check_host as its result.
enum SPFStop: Error {
    case temp(String)
    case perm(String)
}

enum SPFMechanism {
    case all
    case include(String)
    case a(String?, v4: Int, v6: Int)
    case mx(String?, v4: Int, v6: Int)
    case ptr(String?)
    case ip(IPAddress, prefix: Int)
    case exists(String)
}

struct SPFTerm {
    let qualifier: SPFResult
    let mechanism: SPFMechanism
    let text: String
}

struct SPFRecord {
    var terms: [SPFTerm] = []
    var redirect: String?
    var exp: String?

    /// True when `text` is an SPF version 1 record ("v=spf1" alone or followed by a space).
    static func isSPF(_ text: [UInt8]) -> Bool {
        let tag = Array("v=spf1".utf8)
        guard text.count >= tag.count, text[0..<tag.count].map(Ascii.lower).elementsEqual(tag) else { return false }
        return text.count == tag.count || text[tag.count] == Ascii.space
    }

    init(parsing text: String) throws {
        let words = text.split(separator: " ").map(String.init)
        for word in words.dropFirst() {
            try parseTerm(word)
        }
    }

    private mutating func parseTerm(_ word: String) throws {
        guard word.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw SPFStop.perm("invalid character in \(word)") }
        var body = Substring(word)
        var qualifier = SPFResult.pass
        let qualifiers: [Character: SPFResult] = ["+": .pass, "-": .fail, "~": .softfail, "?": .neutral]
        if let q = body.first, let r = qualifiers[q] {
            qualifier = r
            body = body.dropFirst()
        }
        let nameEnd = body.firstIndex(where: { $0 == ":" || $0 == "/" || $0 == "=" }) ?? body.endIndex
        let name = body[..<nameEnd].lowercased()
        let rest = body[nameEnd...]
        if rest.first == "=" {
            guard body.count == word.count else { throw SPFStop.perm("qualifier on a modifier: \(word)") }
            try parseModifier(name, String(rest.dropFirst()), word)
            return
        }
        let arg: String? = rest.first == ":" ? String(rest.dropFirst()) : nil
        if rest.first == ":" && arg!.isEmpty { throw SPFStop.perm("empty argument: \(word)") }
        let mech: SPFMechanism
        switch name {
        case "all":
            guard rest.isEmpty else { throw SPFStop.perm("bad term \(word)") }
            mech = .all
        case "include", "exists":
            guard let spec = arg else { throw SPFStop.perm("\(name) needs a domain: \(word)") }
            try SPFRecord.checkDomainSpec(spec)
            mech = name == "include" ? .include(spec) : .exists(spec)
        case "a", "mx":
            let (spec, cidr) = SPFRecord.splitCIDR(String(rest))
            var domain: String? = nil
            if !spec.isEmpty {
                guard spec.first == ":" else { throw SPFStop.perm("bad term \(word)") }
                domain = String(spec.dropFirst())
                try SPFRecord.checkDomainSpec(domain!)
            }
            let (v4, v6) = try SPFRecord.dualCIDR(cidr, word)
            mech = name == "a" ? .a(domain, v4: v4, v6: v6) : .mx(domain, v4: v4, v6: v6)
        case "ptr":
            if let spec = arg { try SPFRecord.checkDomainSpec(spec) }
            guard arg != nil || rest.isEmpty else { throw SPFStop.perm("bad term \(word)") }
            mech = .ptr(arg)
        case "ip4", "ip6":
            guard let a = arg else { throw SPFStop.perm("\(name) needs an address: \(word)") }
            let parts = a.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let v6 = name == "ip6"
            guard let ip = IPAddress(String(parts[0])), ip.isV6 == v6,
                  v6 || parts[0].allSatisfy({ $0.isNumber || $0 == "." }) else {
                throw SPFStop.perm("bad address: \(word)")
            }
            var prefix = v6 ? 128 : 32
            if parts.count == 2 {
                guard let n = SPFRecord.cidrLength(parts[1]), n <= prefix else { throw SPFStop.perm("bad prefix: \(word)") }
                prefix = n
            }
            mech = .ip(ip, prefix: prefix)
        default:
            throw SPFStop.perm("unknown mechanism \(word)")
        }
        terms.append(SPFTerm(qualifier: qualifier, mechanism: mech, text: word))
    }

    private mutating func parseModifier(_ name: String, _ value: String, _ word: String) throws {
        guard let f = name.first, f.isASCII, f.isLetter,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
            throw SPFStop.perm("bad modifier \(word)")
        }
        switch name {
        case "redirect", "exp":
            try SPFRecord.checkDomainSpec(value)
            if name == "redirect" {
                guard redirect == nil else { throw SPFStop.perm("two redirect modifiers") }
                redirect = value
            } else {
                guard exp == nil else { throw SPFStop.perm("two exp modifiers") }
                exp = value
            }
        default:
            try SPFMacro.checkSyntax(value, exp: false)
        }
    }

    /// A trailing "/24", "//64" or "/24//64" apart from the domain before it;
    /// a slash followed by anything but digits belongs to the domain.
    static func splitCIDR(_ s: String) -> (String, String) {
        var head = Substring(s)
        func digitTail(_ h: Substring) -> Substring.Index? {
            guard let slash = h.lastIndex(of: "/") else { return nil }
            let tail = h[h.index(after: slash)...]
            return !tail.isEmpty && tail.allSatisfy({ $0.isASCII && $0.isNumber }) ? slash : nil
        }
        guard let last = digitTail(head) else { return (s, "") }
        head = head[..<last]
        if head.hasSuffix("/") {
            head = head.dropLast()
            if let v4 = digitTail(head) { head = head[..<v4] }
        }
        return (String(head), String(s[head.endIndex...]))
    }

    static func cidrLength(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.count <= 3, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        if s.count > 1 && s.first == "0" { return nil }
        return Int(s)
    }

    static func dualCIDR(_ s: String, _ word: String) throws -> (Int, Int) {
        if s.isEmpty { return (32, 128) }
        var v4 = 32, v6 = 128
        var rest = Substring(s)
        if rest.hasPrefix("/") && !rest.hasPrefix("//") {
            rest = rest.dropFirst()
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            guard let n = cidrLength(rest[..<end]), n <= 32 else { throw SPFStop.perm("bad prefix: \(word)") }
            v4 = n
            rest = rest[end...]
        }
        if !rest.isEmpty {
            guard rest.hasPrefix("//"), let n = cidrLength(rest.dropFirst(2)), n <= 128 else { throw SPFStop.perm("bad prefix: \(word)") }
            v6 = n
        }
        return (v4, v6)
    }

    /// domain-spec = macro-string domain-end; domain-end is "." toplabel ["."] or a macro.
    static func checkDomainSpec(_ spec: String) throws {
        try SPFMacro.checkSyntax(spec, exp: false)
        guard !spec.isEmpty else { throw SPFStop.perm("empty domain") }
        if spec.hasSuffix("}") || spec.hasSuffix("%%") || spec.hasSuffix("%_") || spec.hasSuffix("%-") { return }
        var s = Substring(spec)
        if s.hasSuffix(".") { s = s.dropLast() }
        guard let dot = s.lastIndex(of: ".") else { throw SPFStop.perm("domain \(spec) has no top label") }
        let top = s[s.index(after: dot)...]
        guard SPFRecord.isTopLabel(top) else { throw SPFStop.perm("bad top label in \(spec)") }
    }

    static func isTopLabel(_ t: Substring) -> Bool {
        guard !t.isEmpty, t.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else { return false }
        if t.allSatisfy({ $0.isNumber }) { return false }
        return t.first != "-" && t.last != "-"
    }
}
