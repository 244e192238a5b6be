// Lookups in a cdb through pread, the way djb's cdb_seek reads: a few small
// reads per key instead of mapping the file (fastforward runs once per
// message and asks for at most a handful of keys, so page faults on a
// mapped multi-megabyte table cost more than the reads). A short read or a
// position past the end is a format error, reported as temporary.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

final class CdbFile {
    let fd: Int32
    let size: Int

    /// Opens a NUL-terminated path; the errno of a failure is returned.
    init?(path: UnsafePointer<CChar>, errno e: inout Int32) {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { e = errno; return nil }
        var st = stat()
        if fstat(fd, &st) != 0 { e = errno; close(fd); return nil }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    private func read(_ buf: UnsafeMutableRawPointer, _ count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, buf + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SysError("read")
            }
            if n == 0 { throw SysError("read", errno: EPROTO) }
            done += n
        }
    }

    private func pair(at offset: Int) throws -> (UInt32, UInt32) {
        var b: (UInt32, UInt32) = (0, 0)
        try withUnsafeMutableBytes(of: &b) { try read($0.baseAddress!, 8, at: offset) }
        return (UInt32(littleEndian: b.0), UInt32(littleEndian: b.1))
    }

    /// The data of the first record for `key`, appended to `out`; nil when
    /// there is none. `key` must not point into `out`.
    func find(_ key: UnsafeBufferPointer<UInt8>, into out: inout ByteArena) throws -> Span? {
        let h = CdbHash.hash(key)
        let (hpos, hslots) = try pair(at: Int(h & 255) * 8)
        if hslots == 0 { return nil }
        var slot = Int(h >> 8) % Int(hslots)
        for _ in 0..<hslots {
            let (sh, rpos) = try pair(at: Int(hpos) + slot * 8)
            if rpos == 0 { return nil }
            if sh == h {
                let (klen, dlen) = try pair(at: Int(rpos))
                // (A length past the end of the file is corruption, not a reason to allocate it.)
                if Int(rpos) + 8 + Int(klen) + Int(dlen) > size { throw SysError("read", errno: EPROTO) }
                if Int(klen) == key.count {
                    // The candidate key is read to where the data will go.
                    out.reserve(max(key.count, Int(dlen)))
                    if key.count > 0 { try read(out.tail, key.count, at: Int(rpos) + 8) }
                    if key.count == 0 || memcmp(out.tail, key.baseAddress!, key.count) == 0 {
                        if dlen > 0 { try read(out.tail, Int(dlen), at: Int(rpos) + 8 + key.count) }
                        return out.commit(Int(dlen))
                    }
                }
            }
            slot += 1
            if slot == Int(hslots) { slot = 0 }
        }
        return nil
    }
}
