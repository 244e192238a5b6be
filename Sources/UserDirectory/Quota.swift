// Maildir++ quotas: "NNNS" bytes, "NNNC" messages, comma separated
// ("10000000S,1000C"); vpopmail writes "NOQUOTA" for none, and a bare
// number means bytes.
import QmailCore

public struct Quota: Sendable, Equatable {
    public var bytes: Int?
    public var count: Int?

    public init(bytes: Int? = nil, count: Int? = nil) {
        self.bytes = bytes
        self.count = count
    }

    public static let unlimited = Quota()
    public var isUnlimited: Bool { bytes == nil && count == nil }

    /// Parses a quota definition; nil when it is malformed. Sizes may carry
    /// vpopmail's suffixes K/M/G (vsetuserquota 10M) before the S.
    public static func parse(_ text: [UInt8]) -> Quota? {
        let t = text.string
        if t.isEmpty || t.uppercased() == "NOQUOTA" { return .unlimited }
        var q = Quota()
        for part in t.split(separator: ",", omittingEmptySubsequences: false) {
            var p = part.uppercased()
            guard !p.isEmpty else { return nil }
            var isCount = false
            if p.hasSuffix("C") { isCount = true; p.removeLast() } else if p.hasSuffix("S") { p.removeLast() }
            var mult = 1
            if !isCount, let last = p.last, "KMG".contains(last) {
                mult = last == "K" ? 1024 : last == "M" ? 1 << 20 : 1 << 30
                p.removeLast()
            }
            guard let v = Decimal.parse(Array(p.utf8)), v <= Int.max / mult else { return nil }
            if isCount {
                if q.count != nil { return nil }
                q.count = v
            } else {
                if q.bytes != nil { return nil }
                q.bytes = v * mult
            }
        }
        return q
    }

    /// The Maildir++ form; "NOQUOTA" when unlimited (vpopmail's spelling).
    public var text: String {
        var parts: [String] = []
        if let b = bytes { parts.append("\(b)S") }
        if let c = count { parts.append("\(c)C") }
        return parts.isEmpty ? "NOQUOTA" : parts.joined(separator: ",")
    }

    /// The maildirsize first line: like `text`, but empty when unlimited.
    public var maildirsizeLine: String { isUnlimited ? "" : text }
}
