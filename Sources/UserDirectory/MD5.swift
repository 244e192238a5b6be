#if canImport(Glibc)
import Glibc
#endif

// MD5 (RFC 1321), only for the challenge logins that need the password in
// clear: APOP (RFC 1939), whose digest is MD5(timestamp + password), and
// CRAM-MD5 (RFC 2195), whose digest is HMAC-MD5 (RFC 2104) of the challenge
// keyed with the password; both in lowercase hex. Not used for storing secrets.

public enum MD5 {
    private static let s: [UInt32] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
        5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ]
    // floor(abs(sin(i + 1)) * 2^32), RFC 1321's table.
    private static let k: [UInt32] = (0..<64).map { i in
        UInt32(truncatingIfNeeded: Int64(abs(sin(Double(i + 1))) * 4294967296.0))
    }

    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var a0: UInt32 = 0x67452301, b0: UInt32 = 0xefcdab89, c0: UInt32 = 0x98badcfe, d0: UInt32 = 0x10325476
        var msg = message
        let bitLength = UInt64(message.count) &* 8
        msg.append(0x80)
        while msg.count % 64 != 56 { msg.append(0) }
        for i in 0..<8 { msg.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
        var m = [UInt32](repeating: 0, count: 16)
        var chunk = 0
        while chunk < msg.count {
            for i in 0..<16 {
                let o = chunk + i * 4
                m[i] = UInt32(msg[o]) | UInt32(msg[o + 1]) << 8 | UInt32(msg[o + 2]) << 16 | UInt32(msg[o + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32
                var g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ k[i] &+ m[g]
                a = d; d = c; c = b
                b = b &+ ((f << s[i]) | (f >> (32 - s[i])))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
            chunk += 64
        }
        var out: [UInt8] = []
        for v in [a0, b0, c0, d0] { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        return out
    }

    public static func hex(_ message: [UInt8]) -> [UInt8] { hex(digest: digest(message)) }

    /// HMAC-MD5 of `message` keyed with `key`, in hex.
    public static func hmacHex(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var k = key.count > 64 ? digest(key) : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        let inner = digest(k.map { $0 ^ 0x36 } + message)
        let out = hex(digest: digest(k.map { $0 ^ 0x5c } + inner))
        explicit_bzero(&k, k.count)
        return out
    }

    /// Bytes as lower-case hex digits.
    public static func hex(digest d: [UInt8]) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in d {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return out
    }
}
