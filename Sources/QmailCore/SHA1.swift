// SHA-1 (FIPS 180-4) and HMAC-SHA1 (RFC 2104), for SRS hashes and the
// cluster's keyed loop marker (VDelivery's ClusterRoute).
// SRS (libsrs2's format) fixes HMAC-SHA1; qmail-srs runs setuid and must
// not link OpenSSL, so this small implementation lives here. SHA-1's
// collision weakness does not touch HMAC-SHA1 as a keyed MAC.

public struct SHA1 {
    public static let digestSize = 20
    static let blockSize = 64

    private var h: (UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
    private var block = [UInt8](repeating: 0, count: 64)
    private var used = 0
    private var length: UInt64 = 0

    public init() {}

    public mutating func update(_ bytes: [UInt8]) {
        for b in bytes {
            block[used] = b
            used += 1
            if used == SHA1.blockSize { compress(); used = 0 }
        }
        length &+= UInt64(bytes.count)
    }

    public mutating func finish() -> [UInt8] {
        let bits = length &* 8
        var pad: [UInt8] = [0x80]
        let afterPad = (used + 1) % SHA1.blockSize
        pad += [UInt8](repeating: 0, count: afterPad <= 56 ? 56 - afterPad : 120 - afterPad)
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        update(pad)
        var out: [UInt8] = []
        for w in [h.0, h.1, h.2, h.3, h.4] {
            out += [UInt8(w >> 24), UInt8(truncatingIfNeeded: w >> 16), UInt8(truncatingIfNeeded: w >> 8), UInt8(truncatingIfNeeded: w)]
        }
        return out
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var s = SHA1()
        s.update(bytes)
        return s.finish()
    }

    private mutating func compress() {
        var w = [UInt32](repeating: 0, count: 80)
        for i in 0..<16 {
            w[i] = UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8 | UInt32(block[4 * i + 3])
        }
        for i in 16..<80 {
            let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
            w[i] = x << 1 | x >> 31
        }
        var (a, b, c, d, e) = h
        for i in 0..<80 {
            let f: UInt32, k: UInt32
            switch i {
            case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let t = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
            e = d; d = c; c = b << 30 | b >> 2; b = a; a = t
        }
        h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
    }
}

public enum HMACSHA1 {
    /// HMAC-SHA1 of `message` under `key` (keys longer than a block are hashed first).
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var h = Stream(key: key)
        h.update(message)
        return h.finish()
    }

    /// The same over a message given in parts (one read through a file).
    public struct Stream {
        private var inner = SHA1()
        private var outerKey: [UInt8]

        public init(key: [UInt8]) {
            var k = key.count > SHA1.blockSize ? SHA1.hash(key) : key
            k += [UInt8](repeating: 0, count: SHA1.blockSize - k.count)
            inner.update(k.map { $0 ^ 0x36 })
            outerKey = k.map { $0 ^ 0x5c }
        }

        public mutating func update(_ bytes: [UInt8]) { inner.update(bytes) }

        public mutating func finish() -> [UInt8] {
            var outer = SHA1()
            outer.update(outerKey)
            outer.update(inner.finish())
            return outer.finish()
        }
    }
}
