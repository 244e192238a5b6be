// Checking a DKIM-Signature (RFC 6376 section 6) against a key record the
// caller looked up: the tests use it on our own signatures and on the RFC
// 8463 example; intake verification will build on it.

public enum DKIMTags {
    /// tag=value pairs of a signature or key record; values keep inner
    /// white space (b= and p= may be folded), names are lower case.
    public static func parse(_ value: ArraySlice<UInt8>) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for part in value.split(separator: 59, omittingEmptySubsequences: true) {
            guard let eq = part.firstIndex(of: 61) else { continue }
            let name = String(decoding: trim(part[..<eq]), as: UTF8.self).lowercased()
            out[name] = Array(trim(part[(eq + 1)...]))
        }
        return out
    }

    static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        let ws: (UInt8) -> Bool = { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 }
        var t = s
        while let f = t.first, ws(f) { t = t.dropFirst() }
        while let l = t.last, ws(l) { t = t.dropLast() }
        return t
    }

    /// The field with the value of its b= tag removed (what was signed).
    static func withoutSignature(_ raw: ArraySlice<UInt8>) -> [UInt8] {
        guard let colon = raw.firstIndex(of: 58) else { return Array(raw) }
        var out = Array(raw[...colon])
        var i = colon + 1
        while i < raw.endIndex {
            let tagEnd = raw[i...].firstIndex(of: 59) ?? raw.endIndex
            let tag = raw[i..<tagEnd]
            if let eq = tag.firstIndex(of: 61), trim(tag[..<eq]).elementsEqual([98]) {
                out += raw[i...eq]
            } else {
                out += tag
            }
            if tagEnd < raw.endIndex { out.append(59) }
            i = tagEnd + 1
        }
        return out
    }
}

public enum DKIMVerifyResult: Equatable {
    case pass
    case fail(String)
}

public enum DKIMVerifier {
    /// Verifies the `index`th DKIM-Signature of `message` (CRLF lines);
    /// `record` gives the TXT record text for (selector, domain).
    public static func verify(_ message: [UInt8], index: Int = 0,
                              record: (String, String) -> String?) -> DKIMVerifyResult {
        var headerEnd = message.count, bodyStart = message.count
        if message.starts(with: [13, 10]) { headerEnd = 0; bodyStart = 2 } else {
            var i = 0
            while i + 3 < message.count {
                if message[i] == 13 && message[i + 1] == 10 && message[i + 2] == 13 && message[i + 3] == 10 {
                    headerEnd = i + 2; bodyStart = i + 4; break
                }
                i += 1
            }
        }
        let fields = DKIMCanonical.fields(Array(message[..<headerEnd]))
        let sigs = fields.filter { $0.name.elementsEqual("dkim-signature".utf8) }
        guard index < sigs.count, let colon = sigs[index].raw.firstIndex(of: 58) else { return .fail("no signature") }
        let sig = sigs[index].raw
        let tags = DKIMTags.parse(sig[(colon + 1)...])
        guard let a = tags["a"].flatMap({ DKIMAlgorithm(tag: $0) }) else { return .fail("unknown algorithm") }
        guard let d = tags["d"], let s = tags["s"], let h = tags["h"], let bh = tags["bh"].flatMap(DKIMBase64.decode),
              let b = tags["b"].flatMap(DKIMBase64.decode) else { return .fail("missing tag") }
        let canon = String(decoding: tags["c"] ?? Array("simple/simple".utf8), as: UTF8.self).lowercased()
        let parts = canon.split(separator: "/")
        let relaxedHeader = parts.first == "relaxed"
        let relaxedBody = parts.count > 1 && parts[1] == "relaxed"
        let body = Array(message[bodyStart...])
        let bodyHash = relaxedBody ? RelaxedBody.hash(body) : SimpleBody.hash(body)
        if bodyHash != bh { return .fail("body hash mismatch") }
        let names = h.split(separator: 58).map { Array(DKIMTags.trim($0)) }
        var data = DKIMSigner.canonicalFields(fields, names, relaxed: relaxedHeader)
        let own = DKIMTags.withoutSignature(sig)
        data += relaxedHeader ? DKIMCanonical.relaxedHeader(own).dropLast(2) : own
        guard let txt = record(String(decoding: s, as: UTF8.self), String(decoding: d, as: UTF8.self)) else {
            return .fail("no key record")
        }
        let rec = DKIMTags.parse(Array(txt.utf8)[...])
        let k = String(decoding: rec["k"] ?? Array("rsa".utf8), as: UTF8.self).lowercased()
        guard k == a.keyType, let p = rec["p"].flatMap(DKIMBase64.decode), !p.isEmpty,
              let key = try? DKIMKey(algorithm: a, publicKey: p) else { return .fail("unusable key record") }
        return key.verify(b, of: data) ? .pass : .fail("signature mismatch")
    }
}
