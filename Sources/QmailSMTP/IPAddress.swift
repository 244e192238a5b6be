// IPv4 and IPv6 addresses as bytes, their text forms, address literals
// ("[1.2.3.4]", "[IPv6:::1]") and ipme: the addresses of this host.
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

    public var isV6: Bool { bytes.count == 16 }

    /// Parses dotted-quad or IPv6 text.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let b = withUnsafeBytes(of: &v6) { Array($0) }
            self.bytes = b
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

    /// If this is an IPv4-mapped IPv6 address (::ffff:a.b.c.d), the IPv4 address.
    public var unmapped: IPAddress {
        if isV6, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return IPAddress(bytes: Array(bytes[12..<16]))!
        }
        return self
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

/// The addresses of this host's interfaces (qmail's ipme), loopback included.
public enum IPMe {
    public static func addresses() -> Set<IPAddress> {
        var result: Set<IPAddress> = [IPAddress("127.0.0.1")!, IPAddress("::1")!]
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            if let sa = ifa.pointee.ifa_addr, let a = SocketAddress.ip(of: sa) { result.insert(a) }
            p = ifa.pointee.ifa_next
        }
        return result
    }
}

/// sockaddr conversions.
public enum SocketAddress {
    public static func ip(of sa: UnsafePointer<sockaddr>) -> IPAddress? {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                var a = p.pointee.sin_addr
                return IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) })
            }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                var a = p.pointee.sin6_addr
                return IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) })
            }
        default:
            return nil
        }
    }

    public static func port(of sa: UnsafePointer<sockaddr>) -> Int? {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
        default:
            return nil
        }
    }

    /// Calls `body` with a sockaddr for `ip`:`port`.
    public static func with<R>(_ ip: IPAddress, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        if ip.isV6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = UInt16(port).bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: ip.bytes) }
            return try withUnsafePointer(to: &sa) { p in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = UInt16(port).bigEndian
        withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: ip.bytes) }
        return try withUnsafePointer(to: &sa) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Connects a new TCP socket to ip:port within `timeout` seconds.
    /// Returns the fd, or the errno (ETIMEDOUT on timeout).
    public static func connect(_ ip: IPAddress, port: Int, timeout: Int) -> Result<Int32, SysError> {
        let fd = socket(ip.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return .failure(SysError("socket")) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let r = with(ip, port: port) { Glibc.connect(fd, $0, $1) }
        if r != 0 && errno != EINPROGRESS {
            let e = SysError("connect", errno: errno)
            close(fd)
            return .failure(e)
        }
        if r != 0 {
            let ready = (try? Poll.wait(fd, events: Int16(POLLOUT), timeout: timeout)) ?? false
            if !ready { close(fd); return .failure(SysError("connect", errno: ETIMEDOUT)) }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { close(fd); return .failure(SysError("connect", errno: err)) }
        }
        _ = fcntl(fd, F_SETFL, flags)
        return .success(fd)
    }
}
