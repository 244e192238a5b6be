// RFC 6376 section 3.4: the canonical forms a signature covers. We sign
// relaxed/relaxed; verification also needs simple.

public enum DKIMCanonical {
    static let sp: UInt8 = 32, tab: UInt8 = 9, cr: UInt8 = 13, lf: UInt8 = 10, colon: UInt8 = 58

    @inline(__always) static func isWSP(_ c: UInt8) -> Bool { c == sp || c == tab }

    /// Relaxed header canonicalization of one field (`raw` is the field as
    /// it stands, folding included, without its final CRLF): the name in
    /// lower case, the value unfolded, runs of white space made one space,
    /// none around the colon or at the end. Ends in CRLF.
    public static func relaxedHeader(_ raw: ArraySlice<UInt8>) -> [UInt8] {
        guard let colon = raw.firstIndex(of: colon) else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + 2)
        var nameEnd = colon
        while nameEnd > raw.startIndex && isWSP(raw[nameEnd - 1]) { nameEnd -= 1 }
        for c in raw[raw.startIndex..<nameEnd] { out.append(c >= 65 && c <= 90 ? c + 32 : c) }
        out.append(Self.colon)
        var pendingSpace = false
        var started = false
        for c in raw[(colon + 1)...] {
            if c == cr || c == lf { continue }
            if isWSP(c) { pendingSpace = true; continue }
            if pendingSpace && started { out.append(sp) }
            pendingSpace = false
            started = true
            out.append(c)
        }
        out.append(cr); out.append(lf)
        return out
    }

    public static func relaxedHeader(_ raw: [UInt8]) -> [UInt8] { relaxedHeader(raw[...]) }

    /// Simple header canonicalization: the field unchanged, plus CRLF.
    public static func simpleHeader(_ raw: ArraySlice<UInt8>) -> [UInt8] { Array(raw) + [cr, lf] }

    /// The fields of a header block (CRLF lines, without the blank line
    /// ending it): each field with its continuation lines, without the
    /// final CRLF, and its name in lower case.
    public static func fields(_ block: [UInt8]) -> [(name: [UInt8], raw: ArraySlice<UInt8>)] {
        var out: [(name: [UInt8], raw: ArraySlice<UInt8>)] = []
        var start = 0
        var i = 0
        func close(_ end: Int) {
            guard end > start else { return }
            let raw = block[start..<end]
            let nameEnd = raw.firstIndex(of: colon) ?? raw.endIndex
            var name = Array(raw[start..<nameEnd])
            while let l = name.last, isWSP(l) { name.removeLast() }
            out.append((name.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, raw))
        }
        while i < block.count {
            guard let lfAt = block[i...].firstIndex(of: lf) else { i = block.count; break }
            let next = lfAt + 1
            // A line that starts with white space continues the field.
            if next < block.count && isWSP(block[next]) { i = next; continue }
            close(lfAt > 0 && block[lfAt - 1] == cr ? lfAt - 1 : lfAt)
            start = next
            i = next
        }
        if start < block.count {
            var end = block.count
            while end > start && (block[end - 1] == cr || block[end - 1] == lf) { end -= 1 }
            close(end)
        }
        return out
    }
}

/// Relaxed body canonicalization (RFC 6376 3.4.4) over bytes given in any
/// pieces, hashed as it goes: white space at line ends removed, runs of
/// white space made one space, empty lines at the end removed. Input lines
/// end in LF; a CR before the LF belongs to the line end.
public struct RelaxedBody {
    var emptyLines = 0
    var space = false
    var lineHasText = false
    var out: [UInt8] = []
    let digest = SHA256Digest()
    /// Canonical bytes still to hash: a signature's l= tag limits them.
    var left = Int.max
    /// Canonical bytes produced so far (hashed or not).
    public private(set) var length = 0

    public init(limit: Int? = nil) {
        out.reserveCapacity(70000)
        if let limit { left = limit }
    }

    mutating func flush() {
        length += out.count
        let n = min(left, out.count)
        if n > 0 { digest.update(n == out.count ? out : Array(out[..<n])) }
        left -= n
        out.removeAll(keepingCapacity: true)
    }

    public mutating func feed(_ c: UInt8) {
        switch c {
        case DKIMCanonical.lf:
            if lineHasText { out.append(DKIMCanonical.cr); out.append(DKIMCanonical.lf) } else { emptyLines += 1 }
            lineHasText = false
            space = false
        case DKIMCanonical.cr:
            break
        case DKIMCanonical.sp, DKIMCanonical.tab:
            space = true
        default:
            if emptyLines > 0 {
                for _ in 0..<emptyLines { out.append(DKIMCanonical.cr); out.append(DKIMCanonical.lf) }
                emptyLines = 0
            }
            if space { out.append(DKIMCanonical.sp); space = false }
            out.append(c)
            lineHasText = true
            if out.count >= 65536 { flush() }
        }
    }

    /// The body hash; a last line without LF counts as ended.
    public mutating func finish() -> [UInt8] {
        if lineHasText { out.append(DKIMCanonical.cr); out.append(DKIMCanonical.lf) }
        flush()
        return digest.finish()
    }

    public static func hash(_ body: [UInt8]) -> [UInt8] {
        hash(body, limit: nil).hash
    }

    /// The hash of the first `limit` canonical bytes (all when nil), and
    /// how many canonical bytes the body has.
    public static func hash(_ body: [UInt8], limit: Int?) -> (hash: [UInt8], length: Int) {
        var b = RelaxedBody(limit: limit)
        for c in body { b.feed(c) }
        let h = b.finish()
        return (h, b.length)
    }
}

/// Simple body canonicalization (RFC 6376 3.4.3), for verification: the
/// body as it is, empty lines at the end removed, CRLF at the end.
public enum SimpleBody {
    public static func hash(_ body: [UInt8]) -> [UInt8] {
        hash(body, limit: nil).hash
    }

    /// As RelaxedBody's: the hash of at most `limit` canonical bytes, and the length.
    public static func hash(_ body: [UInt8], limit: Int?) -> (hash: [UInt8], length: Int) {
        var end = body.count
        while end >= 2 && body[end - 2] == DKIMCanonical.cr && body[end - 1] == DKIMCanonical.lf { end -= 2 }
        var b = Array(body[..<end])
        b += [DKIMCanonical.cr, DKIMCanonical.lf]
        let length = b.count
        if let limit, limit < b.count { b.removeLast(b.count - limit) }
        return (SHA256Digest.of(b), length)
    }
}
