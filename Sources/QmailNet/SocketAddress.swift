// Socket addresses (IP and port) to and from the kernel's sockaddr, a
// connect with a timeout, name and service lookups through the C library
// (tcpserver), and ipme: the addresses of this host.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct SocketAddress: Sendable {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Decodes a sockaddr filled by accept/getsockname/getpeername/getifaddrs;
    /// nil for a family other than IPv4/IPv6. An IPv4-mapped IPv6 address
    /// becomes plain IPv4.
    public init?(_ sa: UnsafePointer<sockaddr>) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let sin = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            var addr = sin.sin_addr
            ip = IPAddress(bytes: withUnsafeBytes(of: &addr) { Array($0) })!
            port = UInt16(bigEndian: sin.sin_port)
        case AF_INET6:
            let sin6 = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
            var addr = sin6.sin6_addr
            ip = IPAddress(bytes: withUnsafeBytes(of: &addr) { Array($0) })!.unmapped
            port = UInt16(bigEndian: sin6.sin6_port)
        default:
            return nil
        }
    }

    public init?(storage: sockaddr_storage) {
        var st = storage
        guard let a = withUnsafePointer(to: &st, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0) } }) else {
            return nil
        }
        self = a
    }

    /// Fills a sockaddr for bind/connect; `asV6` maps an IPv4 address into v6.
    public func withSockaddr<R>(asV6: Bool = false, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        if !ip.isV6 && asV6 {
            return try SocketAddress(ip: IPAddress(bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255] + ip.bytes)!, port: port)
                .withSockaddr(body)
        }
        if ip.isV6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0.copyBytes(from: ip.bytes) }
            return try withUnsafePointer(to: &sin6) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: ip.bytes) }
        return try withUnsafePointer(to: &sin) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }

    /// Connects a new TCP socket to ip:port within `timeout` seconds.
    /// Returns the fd, or the errno (ETIMEDOUT on timeout).
    public static func connect(_ ip: IPAddress, port: Int, timeout: Int) -> Result<Int32, SysError> {
        let fd = socket(ip.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return .failure(SysError("socket")) }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let r = SocketAddress(ip: ip, port: UInt16(port)).withSockaddr { Glibc.connect(fd, $0, $1) }
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

/// The addresses of this host's interfaces (qmail's ipme), loopback included.
public enum IPMe {
    public static func addresses() -> Set<IPAddress> {
        var result: Set<IPAddress> = [IPAddress("127.0.0.1")!, IPAddress("::1")!]
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return result }
        defer { freeifaddrs(list) }
        var p = list
        while let ifa = p {
            if let sa = ifa.pointee.ifa_addr, let a = SocketAddress(UnsafePointer(sa)) { result.insert(a.ip) }
            p = ifa.pointee.ifa_next
        }
        return result
    }
}

/// Lookups through the C library (files, DNS, /etc/services), as tcpserver does them.
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
            if let sa = ai.pointee.ai_addr, let a = SocketAddress(UnsafePointer(sa)), !out.contains(a.ip) { out.append(a.ip) }
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
