// RFC 4648 base64 over bytes: SMTP AUTH (qmail-smtpd), POP3 AUTH PLAIN
// (qmail-popup) and LDIF values (vexport).

public enum Base64 {
    /// Whether decoding insists on '=' padding to a multiple of four.
    public enum Padding: Sendable {
        /// The length must be a multiple of four (RFC 4648 as written).
        case required
        /// Trailing '=' may be left out; any '=' present must still fit.
        case optional
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let values: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    public static func encode(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((b.count + 2) / 3 * 4)
        var i = 0
        while i < b.count {
            let n = min(3, b.count - i)
            var v = UInt32(b[i]) << 16
            if n > 1 { v |= UInt32(b[i + 1]) << 8 }
            if n > 2 { v |= UInt32(b[i + 2]) }
            out.append(alphabet[Int(v >> 18)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(n > 1 ? alphabet[Int((v >> 6) & 63)] : Ascii.equals)
            out.append(n > 2 ? alphabet[Int(v & 63)] : Ascii.equals)
            i += 3
        }
        return out
    }

    /// nil on a byte outside the alphabet, a character after '=', more
    /// than two '=', or a length the padding rule refuses.
    public static func decode(_ s: [UInt8], padding: Padding = .required) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 4 * 3)
        var acc: UInt32 = 0
        var bits = 0
        var pad = 0
        for c in s {
            if c == Ascii.equals { pad += 1; continue }
            if pad > 0 { return nil }
            let v = values[Int(c)]
            if v < 0 { return nil }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 255))
            }
        }
        if pad > 2 { return nil }
        if s.count % 4 != 0 && (padding == .required || pad > 0) { return nil }
        return out
    }
}
