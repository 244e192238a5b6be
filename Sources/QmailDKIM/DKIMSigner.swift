// Signing the message as it goes out (qmail-remote): the scanner reads the
// DATA text SMTPDataEncoder produces (CRLF lines, leading dots doubled),
// undoes the dot doubling (the receiver does the same, so the signature
// covers exactly what it gets), keeps the header block and hashes the body
// in relaxed form as it passes. The signatures are header fields to send
// in front of that same text.

public struct DKIMWireScanner {
    var lineStart = true
    var lineLength = 0
    public private(set) var inHeader = true
    /// The header block, CRLF lines, without the blank line that ends it.
    public private(set) var header: [UInt8] = []
    var body = RelaxedBody()

    public init() {}

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        for c in chunk {
            if lineStart {
                lineStart = false
                // The encoder doubled every dot that starts a line.
                if c == 46 { continue }
            }
            if c == DKIMCanonical.lf { lineStart = true }
            if !inHeader { body.feed(c); continue }
            if c == DKIMCanonical.lf {
                if lineLength == 0 {
                    inHeader = false
                    if header.last == DKIMCanonical.cr { header.removeLast() }
                    continue
                }
                header.append(c)
                lineLength = 0
                continue
            }
            header.append(c)
            if c != DKIMCanonical.cr { lineLength += 1 }
        }
    }

    public mutating func feed(_ bytes: [UInt8]) { bytes.withUnsafeBytes { feed($0) } }

    /// The relaxed body hash (call once, at the end).
    public mutating func bodyHash() -> [UInt8] { body.finish() }
}

public enum DKIMSigner {
    /// The fields we sign when present (RFC 6376 5.4.1's list, less the
    /// ones relays add); From is signed once more than it occurs, so no
    /// From can be added later without breaking the signature.
    public static let signedFields = ["from", "to", "subject", "date", "message-id", "cc", "reply-to", "mime-version",
                                      "content-type", "content-transfer-encoding", "in-reply-to", "references"]

    /// The h= list for this header: each listed field once per occurrence
    /// (a verifier takes them from the bottom up), From once more.
    public static func headerList(_ fields: [(name: [UInt8], raw: ArraySlice<UInt8>)]) -> [String] {
        var out: [String] = []
        for name in signedFields {
            let n = fields.filter { $0.name.elementsEqual(name.utf8) }.count
            out += Array(repeating: name, count: name == "from" ? n + 1 : n)
        }
        return out
    }

    /// The canonical fields `list` names, each name taking its last unused
    /// occurrence (RFC 6376 5.4.2); a name with none left adds nothing.
    public static func canonicalFields(_ fields: [(name: [UInt8], raw: ArraySlice<UInt8>)], _ list: [[UInt8]],
                                       relaxed: Bool = true) -> [UInt8] {
        var used = Set<Int>()
        var out: [UInt8] = []
        for name in list {
            let lower = name.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
            guard let i = fields.indices.last(where: { !used.contains($0) && fields[$0].name == lower }) else { continue }
            used.insert(i)
            out += relaxed ? DKIMCanonical.relaxedHeader(fields[i].raw) : DKIMCanonical.simpleHeader(fields[i].raw)
        }
        return out
    }

    /// One DKIM-Signature field (CRLF lines, folded) for the header block
    /// `header` and body hash `bodyHash`.
    public static func signature(header: [UInt8], bodyHash: [UInt8], key: DKIMKey, domain: String, selector: String,
                                 time: Int) throws -> [UInt8] {
        let fields = DKIMCanonical.fields(header)
        let list = headerList(fields)
        var text = "DKIM-Signature: v=1; a=\(key.algorithm.tag); c=relaxed/relaxed; d=\(domain); s=\(selector);\r\n"
        text += "\tt=\(time); h="
        var lineLength = 8
        for (i, name) in list.enumerated() {
            if i > 0 {
                text += ":"
                lineLength += 1
                if lineLength + name.count > 76 { text += "\r\n\t"; lineLength = 1 }
            }
            text += name
            lineLength += name.count
        }
        text += ";\r\n\tbh=" + String(decoding: DKIMBase64.encode(bodyHash), as: UTF8.self) + ";\r\n\tb="
        let unsigned = Array(text.utf8)
        var data = canonicalFields(fields, list.map { Array($0.utf8) })
        var own = DKIMCanonical.relaxedHeader(unsigned)
        own.removeLast(2)
        data += own
        let b = DKIMBase64.encode(try key.sign(data))
        var out = unsigned
        var i = 0
        while i < b.count {
            if i > 0 { out += [13, 10, 9] }
            out += b[i..<min(i + 72, b.count)]
            i += 72
        }
        out += [13, 10]
        return out
    }

    /// The domain of the first From: address of the header, lower case;
    /// nil when there is none we could sign for.
    public static func fromDomain(_ header: [UInt8]) -> String? {
        guard let from = DKIMCanonical.fields(header).first(where: { $0.name.elementsEqual("from".utf8) }),
              let colon = from.raw.firstIndex(of: DKIMCanonical.colon) else { return nil }
        var value = Array(from.raw[(colon + 1)...])
        // Comments go first: they may hold '<' or '@' of their own.
        var depth = 0
        value = value.filter { c in
            if c == 40 { depth += 1; return false }
            if c == 41 { if depth > 0 { depth -= 1; return false } }
            return depth == 0
        }
        if let lt = value.firstIndex(of: 60) {
            let rest = value[(lt + 1)...]
            value = Array(rest.prefix { $0 != 62 })
        } else if let comma = value.firstIndex(of: 44) {
            value = Array(value[..<comma])
        }
        guard let at = value.lastIndex(of: 64) else { return nil }
        let domain = value[(at + 1)...].filter { !DKIMCanonical.isWSP($0) && $0 != 13 && $0 != 10 }
        return DKIMDomain.normalize(Array(domain))
    }
}

public enum DKIMDomain {
    /// A domain name in lower case when it is one a key may be stored under
    /// (letters, digits, '-', '_', dot-separated non-empty labels); nil
    /// otherwise, so no name from a message can reach outside the key
    /// directory.
    public static func normalize(_ raw: [UInt8]) -> String? {
        var d = raw.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        if d.last == 46 { d.removeLast() }
        if d.isEmpty || d.count > 253 { return nil }
        for label in d.split(separator: 46, omittingEmptySubsequences: false) {
            if label.isEmpty || label.count > 63 { return nil }
            for c in label where !((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 45 || c == 95) { return nil }
        }
        return String(decoding: d, as: UTF8.self)
    }

    /// `domain`, then each parent that still has a dot: a key of
    /// example.org serves mail from news.example.org (relaxed alignment).
    public static func withParents(_ domain: String) -> [String] {
        var out = [domain]
        var d = Substring(domain)
        while let dot = d.firstIndex(of: ".") {
            d = d[d.index(after: dot)...]
            if d.contains(".") { out.append(String(d)) }
        }
        return out
    }
}
