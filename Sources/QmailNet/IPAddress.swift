// IPv4 and IPv6 addresses as bytes and their text forms: tcpserver's
// (IPv4 dotted decimal, IPv6 compact RFC 5952; an IPv4-mapped address from
// a dual-stack socket is reported as plain IPv4), tcprules' expanded IPv6,
// mail address literals ("[1.2.3.4]", "[IPv6:::1]") and the reversed names
// of PTR and blocklist lookups.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6).
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// 0.0.0.0 and ::, the addresses a listener binds for "any".
    public static let unspecifiedV4 = IPAddress(bytes: [UInt8](repeating: 0, count: 4))!
    public static let unspecifiedV6 = IPAddress(bytes: [UInt8](repeating: 0, count: 16))!

    public var isV6: Bool { bytes.count == 16 }

    /// Parses dotted-quad or IPv6 text. A mapped address stays IPv6; see `unmapped`.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    /// An address literal as written in a mail domain: "[1.2.3.4]" or
    /// "[IPv6:2001:db8::1]" (case-insensitive tag).
    public init?(literal: [UInt8]) {
        guard literal.count >= 3, literal.first == 91, literal.last == 93 else { return nil }
        let inner = Array(literal[1..<(literal.count - 1)])
        if inner.count > 5, inner[0..<5].map(Ascii.lower).elementsEqual(Array("ipv6:".utf8)) {
            guard let a = IPAddress(inner[5...].map { $0 }.string), a.isV6 else { return nil }
            self = a
            return
        }
        // "[::1]" is not RFC 5321 syntax, but smtproutes writes IPv6 relays that way.
        guard let a = IPAddress(inner.string) else { return nil }
        self = a
    }

    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        var b = bytes
        let ok = b.withUnsafeMutableBytes { p in
            inet_ntop(isV6 ? AF_INET6 : AF_INET, p.baseAddress, &buf, 64) != nil
        }
        guard ok else { return "?" }
        return String(cString: buf)
    }

    /// Whether the first `prefix` bits equal `net`'s (same family only).
    public func isWithin(_ net: IPAddress, prefix: Int) -> Bool {
        guard bytes.count == net.bytes.count else { return false }
        var left = prefix
        for i in 0..<bytes.count where left > 0 {
            let bits = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if bytes[i] & mask != net.bytes[i] & mask { return false }
            left -= bits
        }
        return true
    }

    /// ::ffff:a.b.c.d becomes a.b.c.d; any other address is itself.
    public var unmapped: IPAddress {
        if isV6, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return IPAddress(bytes: Array(bytes[12..<16]))!
        }
        return self
    }

    /// All eight groups, four hex digits each: "2001:0db8:0000:..." (an
    /// IPv4 address gives its description).
    public var expandedV6: String {
        guard isV6 else { return description }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for i in 0..<16 {
            if i > 0 && i % 2 == 0 { out.append(Ascii.colon) }
            out.append(hex[Int(bytes[i] >> 4)])
            out.append(hex[Int(bytes[i] & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The DNS name for reverse and blocklist lookups, without the zone:
    /// "4.3.2.1" or the 32 nibbles of an IPv6 address.
    public var reverseLabels: String {
        if !isV6 { return bytes.reversed().map { String($0) }.joined(separator: ".") }
        let hex = Array("0123456789abcdef")
        var parts: [String] = []
        for b in bytes.reversed() {
            parts.append(String(hex[Int(b & 15)]))
            parts.append(String(hex[Int(b >> 4)]))
        }
        return parts.joined(separator: ".")
    }

    public var reverseName: String {
        reverseLabels + (isV6 ? ".ip6.arpa" : ".in-addr.arpa")
    }
}
