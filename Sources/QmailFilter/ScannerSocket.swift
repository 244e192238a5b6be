// A conversation with a scanning daemon (clamd, spamd, rspamd) over a unix
// or TCP socket, bounded by one deadline for the whole exchange: a daemon
// that is down, hangs or trickles its answer costs at most the timeout, and
// every failure is a ScanError, which the filter turns into a temporary one.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

/// Why a scanner gave no verdict; always a temporary condition.
public struct ScanError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Where a daemon listens: an absolute path, or ip:port ([v6]:port).
public enum ScannerAddress: Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(IPAddress, UInt16)

    public init?(_ s: String) {
        if s.hasPrefix("/") { self = .unix(s); return }
        guard let colon = s.lastIndex(of: ":") else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let ip = IPAddress(host), let port = UInt16(s[s.index(after: colon)...]), port > 0 else { return nil }
        self = .tcp(ip, port)
    }

    public var description: String {
        switch self {
        case .unix(let p): return p
        case .tcp(let ip, let port): return ip.isV6 ? "[\(ip.description)]:\(port)" : "\(ip.description):\(port)"
        }
    }
}

final class ScannerSocket {
    private let fd: Int32
    private let deadline: Int   // milliseconds on the monotonic clock

    static func nowMillis() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }

    /// Connects within the time left before `deadline` (monotonic ms).
    init(_ address: ScannerAddress, deadline: Int) throws {
        self.deadline = deadline
        let family: Int32
        switch address {
        case .unix: family = AF_UNIX
        case .tcp(let ip, _): family = ip.isV6 ? AF_INET6 : AF_INET
        }
        fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw ScanError("socket: \(Sys.strerror(errno))") }
        var rc: Int32
        switch address {
        case .unix(let path):
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let room = MemoryLayout.size(ofValue: sa.sun_path)
            guard bytes.count < room else { Glibc.close(fd); throw ScanError("socket path too long") }
            withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes) }
            rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        case .tcp(let ip, let port):
            rc = SocketAddress(ip: ip, port: port).withSockaddr { Glibc.connect(fd, $0, $1) }
        }
        if rc != 0 && errno != EINPROGRESS && errno != EAGAIN {
            let e = errno
            Glibc.close(fd)
            throw ScanError("connect to \(address): \(Sys.strerror(e))")
        }
        if rc != 0 {
            do { try wait(Int16(POLLOUT)) } catch { Glibc.close(fd); throw ScanError("connect to \(address): timed out") }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { Glibc.close(fd); throw ScanError("connect to \(address): \(Sys.strerror(err))") }
        }
        if case .tcp = address {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    deinit { Glibc.close(fd) }

    /// Waits for `events` until the deadline.
    private func wait(_ events: Int16) throws {
        while true {
            let left = deadline - ScannerSocket.nowMillis()
            if left <= 0 { throw ScanError("timed out") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, Int32(min(left, 60_000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw ScanError("poll: \(Sys.strerror(errno))") }
        }
    }

    func send(_ bytes: [UInt8]) throws {
        var at = 0
        while at < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + at, $0.count - at, Int32(MSG_NOSIGNAL)) }
            if n > 0 { at += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { try wait(Int16(POLLOUT)); continue }
            throw ScanError("write: \(Sys.strerror(errno))")
        }
    }

    /// Ends our side of the conversation (HTTP/1.0 and spamd read to the end).
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until `done` says the answer is complete (given what has come
    /// so far), the peer closes, or `limit` bytes. Returns what came.
    func receive(limit: Int, done: ([UInt8]) -> Bool = { _ in false }) throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, min($0.count, limit - out.count), 0) }
            if n > 0 {
                out += buf[0..<n]
                if done(out) { break }
                continue
            }
            if n == 0 { break }
            if errno == EAGAIN || errno == EINTR { try wait(Int16(POLLIN)); continue }
            throw ScanError("read: \(Sys.strerror(errno))")
        }
        return out
    }
}
