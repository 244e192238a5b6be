// The Authentication-Results header field (RFC 8601) qmail-smtpd adds,
// and the removal of fields that claim to come from us: a field naming our
// authserv-id that arrives with the message was written by someone else
// (RFC 8601 section 5), so it goes before ours is added. Fields of other
// authserv-ids stay. Messages here have LF line ends, as qmail stores them.
import QmailDKIM

public struct SPFOutcome: Equatable {
    public var result: String
    /// "mailfrom", or "helo" when MAIL FROM was empty.
    public var identity: String
    /// The address (mailfrom) or name (helo) that was checked.
    public var value: String
    /// The domain the SPF record came from (for DMARC alignment).
    public var domain: String

    public init(result: String, identity: String, value: String, domain: String) {
        self.result = result
        self.identity = identity
        self.value = value
        self.domain = domain
    }
}

public enum AuthResults {
    /// The field, folded, ending in LF.
    public static func field(authservID: String, spf: SPFOutcome?, dkim: [DKIMSignatureResult]?,
                             dmarc: DMARCVerdict?) -> [UInt8] {
        var parts: [String] = []
        if let spf {
            parts.append("spf=\(spf.result) smtp.\(spf.identity)=\(value(spf.value))")
        }
        if let dkim {
            if dkim.isEmpty { parts.append("dkim=none") }
            for d in dkim {
                var p = "dkim=\(d.result)"
                if !d.reason.isEmpty { p += " reason=\(quoted(d.reason))" }
                if !d.domain.isEmpty { p += " header.d=\(value(d.domain))" }
                if !d.selector.isEmpty { p += " header.s=\(value(d.selector))" }
                if !d.algorithm.isEmpty { p += " header.a=\(value(d.algorithm))" }
                if !d.bPrefix.isEmpty { p += " header.b=\(value(d.bPrefix))" }
                parts.append(p)
            }
        }
        if let dmarc {
            var p = "dmarc=\(dmarc.result)"
            if dmarc.result == "fail" || dmarc.result == "pass" {
                p += " (p=\(dmarc.requested.rawValue) dis=\(dmarc.disposition.rawValue))"
            }
            if !dmarc.reason.isEmpty && dmarc.result != "pass" { p += " reason=\(quoted(dmarc.reason))" }
            if !dmarc.fromDomain.isEmpty { p += " header.from=\(value(dmarc.fromDomain))" }
            parts.append(p)
        }
        var text = "Authentication-Results: " + clean(authservID)
        text += parts.isEmpty ? "; none\n" : parts.map { ";\n\t" + $0 }.joined() + "\n"
        return Array(text.utf8)
    }

    /// A property value: as it is when it is a token or an address, else quoted.
    static func value(_ s: String) -> String {
        let special = Set("()<>,;:\\\"/[]?= \t")
        let isToken = !s.isEmpty && s.allSatisfy { $0.isASCII && $0 > " " && $0 != "\u{7f}" && !special.contains($0) }
        return isToken ? s : quoted(s)
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in clean(s) {
            if c == "\"" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out + "\""
    }

    /// Printable ASCII only: nothing from a message may break the field.
    static func clean(_ s: String) -> String {
        String(s.prefix(200).map { $0.isASCII && $0 >= " " && $0 != "\u{7f}" ? $0 : "?" })
    }

    /// `message` (LF lines) without the Authentication-Results fields of
    /// its header that name `authservID`.
    public static func removeForged(_ message: [UInt8], authservID: String) -> [UInt8] {
        let id = Array(authservID.lowercased().utf8)
        var out: [UInt8] = []
        out.reserveCapacity(message.count)
        var i = 0
        while i < message.count {
            // One field: its first line and the continuation lines after it.
            var end = i
            repeat {
                end = message[end...].firstIndex(of: 10).map { $0 + 1 } ?? message.count
            } while end < message.count && (message[end] == 32 || message[end] == 9)
            let field = message[i..<end]
            if field.first == 10 || (field.first == 13 && field.dropFirst().first == 10) {
                out += message[i...]  // the empty line: the body follows as it is
                return out
            }
            if !names(field, id) { out += field }
            i = end
        }
        return out
    }

    /// True when `line` is an Authentication-Results field naming `id`.
    static func names(_ line: ArraySlice<UInt8>, _ id: [UInt8]) -> Bool {
        let prefix = Array("authentication-results:".utf8)
        guard line.count > prefix.count,
              line.prefix(prefix.count).map({ $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }) == prefix else { return false }
        var rest = line.dropFirst(prefix.count)
        // Skip white space and comments before the authserv-id.
        var depth = 0
        while let c = rest.first, c == 32 || c == 9 || c == 13 || c == 10 || c == 40 || depth > 0 {
            if c == 40 { depth += 1 } else if c == 41 { depth -= 1 }
            rest = rest.dropFirst()
        }
        let token = rest.prefix { $0 != 59 && $0 != 32 && $0 != 9 && $0 != 40 && $0 != 13 && $0 != 10 }
        return token.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 } == id
    }

    /// An LF message as it travelled (CRLF lines), for DKIM.
    public static func withCRLF(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 32 + 2)
        var prev: UInt8 = 0
        for c in message {
            if c == 10 && prev != 13 { out.append(13) }
            out.append(c)
            prev = c
        }
        return out
    }

    /// The header block of a CRLF message, without the blank line.
    public static func header(_ message: [UInt8]) -> [UInt8] {
        if message.starts(with: [13, 10]) { return [] }
        var i = 0
        while i + 3 < message.count {
            if message[i] == 13 && message[i + 1] == 10 && message[i + 2] == 13 && message[i + 3] == 10 {
                return Array(message[..<(i + 2)])
            }
            i += 1
        }
        return message
    }
}
