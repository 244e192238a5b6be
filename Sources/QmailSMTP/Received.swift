// The trace line qmail's network servers put on top of each message:
//   Received: from REMOTEHOST (HELO helo) (REMOTEINFO@REMOTEIP)
//     by LOCAL with SMTP; 21 Nov 2026 06:00:00 -0000
// Each field is made safe (anything but letters, digits and . @ % + / = : -
// becomes '?') so that a client cannot inject header text.
import QmailCore

public enum Received {
    static func safe(_ s: [UInt8]) -> [UInt8] {
        s.map { c in
            switch c {
            case 48...57, 65...90, 97...122: return c
            case Ascii.dot, Ascii.at, Ascii.percent, Ascii.plus, Ascii.slash, Ascii.equals, Ascii.colon, Ascii.minus: return c
            default: return 63
            }
        }
    }

    public static func line(protocol proto: String, local: [UInt8], remoteIP: [UInt8], remoteHost: [UInt8],
                            remoteInfo: [UInt8]?, helo: [UInt8]?, now: Int = Sys.now()) -> [UInt8] {
        var out = Array("Received: from ".utf8)
        out += safe(remoteHost)
        if let helo {
            out += Array(" (HELO ".utf8) + safe(helo) + [41]
        }
        out += Array(" (".utf8)
        if let remoteInfo { out += safe(remoteInfo) + [Ascii.at] }
        out += safe(remoteIP)
        out += Array(")\n  by ".utf8)
        out += safe(local)
        out += Array(" with \(proto); \(Date822.qmail(now))\n".utf8)
        return out
    }
}

/// Base64 for SMTP AUTH.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static let table: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    public static func encode(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((b.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < b.count {
            let v = (UInt32(b[i]) << 16) | (UInt32(b[i + 1]) << 8) | UInt32(b[i + 2])
            out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], alphabet[Int((v >> 6) & 63)], alphabet[Int(v & 63)]]
            i += 3
        }
        let rest = b.count - i
        if rest == 1 {
            let v = UInt32(b[i]) << 16
            out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], 61, 61]
        } else if rest == 2 {
            let v = (UInt32(b[i]) << 16) | (UInt32(b[i + 1]) << 8)
            out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], alphabet[Int((v >> 6) & 63)], 61]
        }
        return out
    }

    /// Strict decoding; nil on any character outside the alphabet or bad padding.
    public static func decode(_ s: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        var pad = 0
        for c in s {
            if c == 61 { pad += 1; continue }
            if pad > 0 { return nil }
            let v = table[Int(c)]
            if v < 0 { return nil }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xff))
            }
        }
        if pad > 2 || (s.count % 4 != 0 && pad > 0) { return nil }
        return out
    }
}
