// Checking DKIM-Signatures (RFC 6376 section 6) against key records the
// caller looks up (qmail-smtpd asks DNS). The work is bounded whatever the
// message holds: at most `maxSignatures` signatures are checked, each key
// record at most 4 KB, RSA keys of 1024 to 4096 bits (RFC 8301), and a
// signature that cannot be understood is a permerror, never a crash.

#if canImport(Glibc)
import Glibc
#endif
import QmailCore

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

/// What a key lookup found: the TXT record, nothing, or no answer now.
public enum DKIMKeyAnswer: Equatable {
    case record(String)
    case none
    case temporary
}

/// One signature's result, with what RFC 8601 reports about it.
public struct DKIMSignatureResult: Equatable {
    /// pass, fail, neutral, policy, temperror or permerror (RFC 8601 names).
    public var result: String
    public var domain = ""
    public var selector = ""
    public var algorithm = ""
    /// The start of b=, telling signatures of one domain apart (RFC 6008).
    public var bPrefix = ""
    public var reason = ""

    public init(result: String, reason: String = "") {
        self.result = result
        self.reason = reason
    }
}

public struct DKIMLimits {
    public var maxSignatures = 10
    public var minRSABits = 1024
    public var maxRSABits = 4096
    public var maxRecordBytes = 4096
    public init() {}
}

public enum DKIMVerifier {
    /// Verifies the `index`th DKIM-Signature of `message` (CRLF lines);
    /// `record` gives the TXT record text for (selector, domain).
    public static func verify(_ message: [UInt8], index: Int = 0,
                              record: (String, String) -> String?) -> DKIMVerifyResult {
        let m = Message(message)
        guard index < m.signatures.count else { return .fail("no signature") }
        var cache: [String: (hash: [UInt8], length: Int)] = [:]
        let r = check(m, m.signatures[index], limits: DKIMLimits(), now: Int(time(nil)), bodyHashes: &cache) {
            record($0, $1).map(DKIMKeyAnswer.record) ?? .none
        }
        return r.result == "pass" ? .pass : .fail(r.reason)
    }

    /// Results for every DKIM-Signature of `message` (CRLF lines), in
    /// order; signatures past `limits.maxSignatures` are summed up in one
    /// "policy" result. Empty when the message has none.
    public static func verifyAll(_ message: [UInt8], limits: DKIMLimits = DKIMLimits(), now: Int = Int(time(nil)),
                                 lookup: (String, String) -> DKIMKeyAnswer) -> [DKIMSignatureResult] {
        let m = Message(message)
        var cache: [String: (hash: [UInt8], length: Int)] = [:]
        var out = m.signatures.prefix(limits.maxSignatures).map {
            check(m, $0, limits: limits, now: now, bodyHashes: &cache, lookup: lookup)
        }
        if m.signatures.count > limits.maxSignatures {
            out.append(DKIMSignatureResult(result: "policy",
                                           reason: "\(m.signatures.count - limits.maxSignatures) more signatures not checked"))
        }
        return out
    }

    struct Message {
        let fields: [(name: [UInt8], raw: ArraySlice<UInt8>)]
        let signatures: [ArraySlice<UInt8>]
        let body: [UInt8]

        init(_ message: [UInt8]) {
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
            fields = DKIMCanonical.fields(Array(message[..<headerEnd]))
            signatures = fields.filter { $0.name.elementsEqual("dkim-signature".utf8) }.map { $0.raw }
            body = Array(message[bodyStart...])
        }
    }

    static func check(_ m: Message, _ sig: ArraySlice<UInt8>, limits: DKIMLimits, now: Int,
                      bodyHashes: inout [String: (hash: [UInt8], length: Int)],
                      lookup: (String, String) -> DKIMKeyAnswer) -> DKIMSignatureResult {
        var r = DKIMSignatureResult(result: "permerror")
        func text(_ b: [UInt8]?) -> String { String(decoding: b ?? [], as: UTF8.self) }
        guard let colon = sig.firstIndex(of: 58) else { r.reason = "malformed signature"; return r }
        let tags = DKIMTags.parse(sig[(colon + 1)...])
        r.domain = DKIMDomain.normalize(tags["d"] ?? []) ?? ""
        r.selector = text(tags["s"]).filter { !$0.isWhitespace }
        r.algorithm = text(tags["a"]).lowercased()
        r.bPrefix = String(text(tags["b"]).filter { !$0.isWhitespace }.prefix(8))
        func fail(_ result: String, _ why: String) -> DKIMSignatureResult { r.result = result; r.reason = why; return r }
        guard tags["v"] == [49] else { return fail("permerror", "missing or unknown v= tag") }
        guard let a = tags["a"].flatMap({ DKIMAlgorithm(tag: $0) }) else {
            return fail("permerror", "unsupported algorithm \(r.algorithm)")
        }
        guard let h = tags["h"], let bh = tags["bh"].flatMap(DKIMBase64.decode),
              let b = tags["b"].flatMap(DKIMBase64.decode), !b.isEmpty else {
            return fail("permerror", "missing or malformed h=, bh= or b= tag")
        }
        guard !r.domain.isEmpty, !r.selector.isEmpty,
              r.selector.utf8.allSatisfy({ $0 == 46 || $0 == 45 || $0 == 95 || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || ($0 >= 48 && $0 <= 57) })
        else { return fail("permerror", "bad d= or s= tag") }
        let names = h.split(separator: 58).map { Array(DKIMTags.trim($0)).map { $0 | ($0 >= 65 && $0 <= 90 ? 0x20 : 0) } }
        guard names.contains(Array("from".utf8)) else { return fail("permerror", "From: is not signed") }
        if let i = tags["i"] {
            guard let at = i.lastIndex(of: 64), let id = DKIMDomain.normalize(Array(i[(at + 1)...])),
                  id == r.domain || id.hasSuffix("." + r.domain) else { return fail("permerror", "i= is not within d=") }
        }
        if let x = tags["x"] {
            guard let expiry = Int(text(x)) else { return fail("permerror", "bad x= tag") }
            if expiry < now { return fail("fail", "signature expired") }
        }
        var limit: Int? = nil
        if let l = tags["l"] {
            guard l.count <= 18, let n = Int(text(l)), n >= 0 else { return fail("permerror", "bad l= tag") }
            limit = n
        }
        let canon = text(tags["c"] ?? Array("simple/simple".utf8)).lowercased()
        let parts = canon.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, ["simple", "relaxed"].contains(parts[0]), parts.count == 1 || ["simple", "relaxed"].contains(parts[1]) else {
            return fail("permerror", "unknown canonicalization \(canon)")
        }
        let relaxedHeader = parts[0] == "relaxed"
        let relaxedBody = parts.count > 1 && parts[1] == "relaxed"
        let key = "\(relaxedBody) \(limit ?? -1)"
        let body = bodyHashes[key] ?? (relaxedBody ? RelaxedBody.hash(m.body, limit: limit) : SimpleBody.hash(m.body, limit: limit))
        bodyHashes[key] = body
        if let limit, limit > body.length { return fail("permerror", "l= is longer than the body") }
        if body.hash != bh { return fail("fail", "body hash mismatch") }

        let txt: String
        switch lookup(r.selector, r.domain) {
        case .temporary: return fail("temperror", "key lookup failed")
        case .none: return fail("permerror", "no key for signature")
        case .record(let t): txt = t
        }
        guard txt.utf8.count <= limits.maxRecordBytes else { return fail("permerror", "key record over \(limits.maxRecordBytes) bytes") }
        let rec = DKIMTags.parse(Array(txt.utf8)[...])
        if let v = rec["v"], v != Array("DKIM1".utf8) { return fail("permerror", "key record is not DKIM1") }
        let k = text(rec["k"] ?? Array("rsa".utf8)).lowercased()
        if let hs = rec["h"], !text(hs).lowercased().split(separator: ":").contains(where: { $0.trimmingCharacters(in: " \t\r\n") == "sha256" }) {
            return fail("permerror", "key does not allow sha256")
        }
        guard k == a.keyType else { return fail("permerror", "key type \(k) does not match a=") }
        guard let p = rec["p"].flatMap(DKIMBase64.decode) else { return fail("permerror", "malformed key record") }
        if p.isEmpty { return fail("permerror", "key revoked") }
        guard let pub = try? DKIMKey(algorithm: a, publicKey: p) else { return fail("permerror", "unusable key") }
        if a == .rsa && (pub.bits < limits.minRSABits || pub.bits > limits.maxRSABits) {
            return fail("permerror", "RSA key of \(pub.bits) bits")
        }
        var data = DKIMSigner.canonicalFields(m.fields, names, relaxed: relaxedHeader)
        let own = DKIMTags.withoutSignature(sig)
        data += relaxedHeader ? DKIMCanonical.relaxedHeader(own).dropLast(2) : own
        return pub.verify(b, of: data) ? fail("pass", "") : fail("fail", "signature mismatch")
    }
}
