// A local SOCK_SEQPACKET socket pair: each send is one record, received
// whole, and may carry open descriptors (SCM_RIGHTS). qmail-lspawn hands
// deliveries to its delivery workers this way (LocalSpawn, LocalWorker).
#if canImport(Glibc)
import Glibc
#endif

public enum PacketSocket {
    /// Largest record either side sends.
    public static let maxRecord = 16384
    /// Most descriptors one record carries.
    public static let maxFds = 4

    /// A connected pair, both ends close-on-exec.
    public static func pair() throws -> (Int32, Int32) {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else {
            throw SysError("socketpair")
        }
        return (sv[0], sv[1])
    }

    // struct cmsghdr is { size_t len; int level; int type; } and its data
    // starts at the next multiple of size_t (CMSG_* are macros, not
    // imported into Swift).
    static let headerSize = MemoryLayout<Int>.size + 2 * MemoryLayout<Int32>.size
    static func space(_ fds: Int) -> Int {
        let a = MemoryLayout<Int>.size
        return (headerSize + fds * 4 + a - 1) / a * a
    }

    /// Sends `bytes` as one record with `fds` attached. Throws on failure
    /// (EAGAIN on a full non-blocking socket, EPIPE when the peer is gone).
    public static func send(_ sock: Int32, _ bytes: [UInt8], fds: [Int32] = []) throws {
        precondition(fds.count <= maxFds && bytes.count <= maxRecord && !bytes.isEmpty)
        var control = [UInt8](repeating: 0, count: fds.isEmpty ? 0 : space(fds.count))
        var data = bytes
        let r: Int = data.withUnsafeMutableBytes { d in
            control.withUnsafeMutableBytes { c in
                if !fds.isEmpty {
                    c.storeBytes(of: headerSize + fds.count * 4, as: Int.self)
                    c.storeBytes(of: SOL_SOCKET, toByteOffset: MemoryLayout<Int>.size, as: Int32.self)
                    c.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
                    for (i, fd) in fds.enumerated() { c.storeBytes(of: fd, toByteOffset: headerSize + 4 * i, as: Int32.self) }
                }
                var iov = iovec(iov_base: d.baseAddress, iov_len: d.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var m = msghdr()
                    m.msg_iov = iovp
                    m.msg_iovlen = 1
                    m.msg_control = fds.isEmpty ? nil : c.baseAddress
                    m.msg_controllen = fds.isEmpty ? 0 : c.count
                    var n: Int
                    repeat { n = sendmsg(sock, &m, Int32(MSG_NOSIGNAL)) } while n < 0 && errno == EINTR
                    return n
                }
            }
        }
        if r < 0 { throw SysError("sendmsg") }
        if r != bytes.count { throw SysError("sendmsg", errno: EMSGSIZE) }
    }

    /// One record and the descriptors it carried (close-on-exec here);
    /// nil at end of file. Throws on failure, EAGAIN included.
    public static func receive(_ sock: Int32) throws -> (bytes: [UInt8], fds: [Int32])? {
        var data = [UInt8](repeating: 0, count: maxRecord)
        var control = [UInt8](repeating: 0, count: space(maxFds))
        var fds: [Int32] = []
        let n: Int = data.withUnsafeMutableBytes { d in
            control.withUnsafeMutableBytes { c in
                var iov = iovec(iov_base: d.baseAddress, iov_len: d.count)
                return withUnsafeMutablePointer(to: &iov) { iovp in
                    var m = msghdr()
                    m.msg_iov = iovp
                    m.msg_iovlen = 1
                    m.msg_control = c.baseAddress
                    m.msg_controllen = c.count
                    var n: Int
                    repeat { n = recvmsg(sock, &m, Int32(MSG_CMSG_CLOEXEC)) } while n < 0 && errno == EINTR
                    // One SCM_RIGHTS header is all a peer of ours sends.
                    if n >= 0 && m.msg_controllen >= headerSize {
                        let len = c.load(as: Int.self)
                        let level = c.load(fromByteOffset: MemoryLayout<Int>.size, as: Int32.self)
                        let type = c.load(fromByteOffset: MemoryLayout<Int>.size + 4, as: Int32.self)
                        if level == SOL_SOCKET && type == Int32(SCM_RIGHTS) && len <= m.msg_controllen {
                            for i in 0..<max(0, (len - headerSize) / 4) {
                                fds.append(c.load(fromByteOffset: headerSize + 4 * i, as: Int32.self))
                            }
                        }
                    }
                    return n
                }
            }
        }
        if n < 0 { throw SysError("recvmsg") }
        if n == 0 && fds.isEmpty { return nil }
        return (Array(data[0..<n]), fds)
    }
}
