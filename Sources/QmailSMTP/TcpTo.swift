// qmail-tcpto's memory of hosts that timed out (queue/lock/tcpto): 64
// records of 16 bytes, the IPv4 address, a count of recent timeouts, and the
// time of the last one (little-endian) at offset 8. A host with two or more
// recent timeouts is skipped for about an hour. IPv6 hosts are kept the same
// way in queue/lock/tcpto6 with 32-byte records (address at 0, count at 16,
// time at 24), since their addresses do not fit qmail's record.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

public struct TcpTo {
    public let path4: String
    public let path6: String

    public init(queue: String) {
        path4 = queue + "/lock/tcpto"
        path6 = queue + "/lock/tcpto6"
    }

    static func layout(_ ip: IPAddress) -> (size: Int, addr: Int, count: Int, when: Int) {
        ip.isV6 ? (32, 16, 16, 24) : (16, 4, 4, 8)
    }

    func path(_ ip: IPAddress) -> String { ip.isV6 ? path6 : path4 }

    static func when(_ r: ArraySlice<UInt8>, at: Int) -> Int {
        let b = r.startIndex + at
        return Int(r[b]) | Int(r[b + 1]) << 8 | Int(r[b + 2]) << 16 | Int(r[b + 3]) << 24
    }

    /// True when `ip` should be skipped now.
    public func isBad(_ ip: IPAddress, now: Int = Sys.now()) -> Bool {
        guard let data = try? FileIO.read(path(ip), limit: 4096) else { return false }
        let l = TcpTo.layout(ip)
        var i = 0
        while i + l.size <= data.count {
            let r = data[i..<(i + l.size)]
            if r.prefix(l.addr).elementsEqual(ip.bytes) {
                if r[i + l.count] >= 2 {
                    let w = TcpTo.when(r, at: l.when)
                    if now - w < ((60 + Int(getpid() & 31)) << 6) { return true }
                }
                return false
            }
            i += l.size
        }
        return false
    }

    /// Records the outcome of a connection: a timeout bumps the count, success clears it.
    public func record(_ ip: IPAddress, timedOut: Bool, now: Int = Sys.now()) {
        let p = path(ip)
        let fd = Glibc.open(p, (timedOut ? O_CREAT : 0) | O_RDWR | O_CLOEXEC, 0o644)
        if fd < 0 { return }
        defer { close(fd) }
        if flock(fd, LOCK_EX) != 0 { return }
        let l = TcpTo.layout(ip)
        var data = [UInt8](repeating: 0, count: 64 * l.size)
        let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { return }
        var slot = -1
        var oldest = -1
        var oldestWhen = Int.max
        for k in 0..<64 {
            let r = data[(k * l.size)..<((k + 1) * l.size)]
            if r.prefix(l.addr).elementsEqual(ip.bytes) && (r[k * l.size + l.count] > 0 || timedOut) { slot = k; break }
            let w = r[k * l.size + l.count] == 0 ? -1 : TcpTo.when(r, at: l.when)
            if w < oldestWhen { oldestWhen = w; oldest = k }
        }
        if slot < 0 {
            if !timedOut { return }
            slot = oldest
            for j in 0..<l.size { data[slot * l.size + j] = 0 }
            for j in 0..<l.addr { data[slot * l.size + j] = ip.bytes[j] }
        }
        let base = slot * l.size
        if timedOut {
            let c = data[base + l.count]
            // A timeout long after the last one starts a new count.
            let last = TcpTo.when(data[base..<(base + l.size)], at: l.when)
            data[base + l.count] = (c > 0 && now - last < 3600) ? (c < 255 ? c + 1 : c) : 1
            for j in 0..<4 { data[base + l.when + j] = UInt8((now >> (8 * j)) & 0xff) }
        } else {
            data[base + l.count] = 0
        }
        _ = data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    /// qmail-tcpto's listing: "1.2.3.4 timed out 10 seconds ago; # recent timeouts: 2".
    public func report(now: Int = Sys.now()) -> String {
        var out = ""
        for (path, v6) in [(path4, false), (path6, true)] {
            guard let data = try? FileIO.read(path, limit: 4096) else { continue }
            let l = v6 ? (32, 16, 16, 24) : (16, 4, 4, 8)
            var i = 0
            while i + l.0 <= data.count {
                let r = data[i..<(i + l.0)]
                if r[i + l.2] >= 1, let ip = IPAddress(bytes: Array(r.prefix(l.1))) {
                    out += "\(ip) timed out \(now - TcpTo.when(r, at: l.3)) seconds ago; # recent timeouts: \(r[i + l.2])\n"
                }
                i += l.0
            }
        }
        return out
    }

    /// qmail-tcpok: forget every timeout.
    public func clear() throws {
        for (path, size) in [(path4, 1024), (path6, 2048)] {
            let fd: Int32
            do { fd = try Sys.open(path, O_RDWR) } catch let e as SysError where e.isNotFound { continue }
            defer { close(fd) }
            if flock(fd, LOCK_EX) != 0 { throw SysError("lock", path: path) }
            let zeros = [UInt8](repeating: 0, count: size)
            let n = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            if n != size { throw SysError("write", path: path) }
        }
    }
}
