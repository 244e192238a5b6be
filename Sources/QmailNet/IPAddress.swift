// IPv4 and IPv6 addresses as tcpserver prints them: IPv4 dotted decimal,
// IPv6 in the compact RFC 5952 form; an IPv4-mapped IPv6 address (a v4
// client on a dual-stack socket) is reported as plain IPv4.
#if canImport(Glibc)
import Glibc
#endif

public enum IPAddress: Equatable, Sendable {
    case v4([UInt8])   // 4 bytes
    case v6([UInt8])   // 16 bytes

    public static func parse(_ s: String) -> IPAddress? {
        var a4 = in_addr()
        if inet_pton(AF_INET, s, &a4) == 1 {
            return .v4(withUnsafeBytes(of: &a4) { Array($0) })
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, s, &a6) == 1 {
            return IPAddress.v6(withUnsafeBytes(of: &a6) { Array($0) }).unmapped
        }
        return nil
    }

    /// ::ffff:a.b.c.d becomes a.b.c.d.
    public var unmapped: IPAddress {
        if case .v6(let b) = self, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 255, b[11] == 255 {
            return .v4(Array(b[12..<16]))
        }
        return self
    }

    public var isV6: Bool { if case .v6 = self { return true } else { return false } }

    public var description: String {
        switch self {
        case .v4(let b):
            return "\(b[0]).\(b[1]).\(b[2]).\(b[3])"
        case .v6(let b):
            var buf = [CChar](repeating: 0, count: 64)
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            _ = inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count))
            return String(cString: buf)
        }
    }

    /// All eight groups, four hex digits each: "2001:0db8:0000:...".
    public var expandedV6: String {
        guard case .v6(let b) = self else { return description }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for i in 0..<16 {
            if i > 0 && i % 2 == 0 { out.append(58) }
            out.append(hex[Int(b[i] >> 4)])
            out.append(hex[Int(b[i] & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A socket address: IP and port.
public struct SocketAddress: Sendable {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Decodes a sockaddr filled by accept/getsockname/getpeername.
    public init?(storage: sockaddr_storage) {
        var st = storage
        switch Int32(st.ss_family) {
        case AF_INET:
            let sin = withUnsafeBytes(of: &st) { $0.load(as: sockaddr_in.self) }
            var addr = sin.sin_addr
            ip = .v4(withUnsafeBytes(of: &addr) { Array($0) })
            port = UInt16(bigEndian: sin.sin_port)
        case AF_INET6:
            let sin6 = withUnsafeBytes(of: &st) { $0.load(as: sockaddr_in6.self) }
            var addr = sin6.sin6_addr
            ip = IPAddress.v6(withUnsafeBytes(of: &addr) { Array($0) }).unmapped
            port = UInt16(bigEndian: sin6.sin6_port)
        default:
            return nil
        }
    }

    /// Fills a sockaddr for bind/connect; `asV6` maps an IPv4 address into v6.
    public func withSockaddr<R>(asV6: Bool = false, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch ip {
        case .v4(let b) where !asV6:
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: b) }
            return withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v4(let b):
            return SocketAddress(ip: .v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255] + b), port: port).withSockaddr(body)
        case .v6(let b):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: b) }
            return withUnsafePointer(to: &sin6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}

public enum NameLookup {
    /// The host name for an address (reverse lookup), or nil.
    public static func name(of ip: IPAddress) -> String? {
        let sa = SocketAddress(ip: ip, port: 0)
        var host = [CChar](repeating: 0, count: 1025)
        let r = sa.withSockaddr { p, len in
            getnameinfo(p, len, &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        return r == 0 ? String(cString: host) : nil
    }

    /// Addresses of a host name (forward lookup).
    public static func addresses(of name: String, family: Int32 = AF_UNSPEC) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &res) == 0 else { return [] }
        defer { freeaddrinfo(res) }
        var out: [IPAddress] = []
        var p = res
        while let ai = p {
            if let sa = ai.pointee.ai_addr {
                var st = sockaddr_storage()
                withUnsafeMutableBytes(of: &st) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                }
                if let a = SocketAddress(storage: st), !out.contains(a.ip) { out.append(a.ip) }
            }
            p = ai.pointee.ai_next
        }
        return out
    }

    /// A port number or a service name from /etc/services.
    public static func port(_ s: String) -> UInt16? {
        if let n = UInt16(s) { return n }
        guard let ent = getservbyname(s, "tcp") else { return nil }
        return UInt16(bigEndian: UInt16(truncatingIfNeeded: ent.pointee.s_port))
    }
}
