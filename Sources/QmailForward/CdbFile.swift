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

    init(path: String) throws {
        fd = try Sys.open(path, O_RDONLY)
        do { size = Int(try Sys.fstat(fd).st_size) } catch { Sys.close(fd); throw error }
    }

    deinit { Sys.close(fd) }

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

    /// The data of the first record for `key`, or nil.
    func find(_ key: [UInt8]) throws -> [UInt8]? {
        let h = CdbHash.hash(key)
        let (hpos, hslots) = try pair(at: Int(h & 255) * 8)
        if hslots == 0 { return nil }
        var slot = Int(h >> 8) % Int(hslots)
        var candidate = [UInt8](repeating: 0, count: key.count)
        for _ in 0..<hslots {
            let (sh, rpos) = try pair(at: Int(hpos) + slot * 8)
            if rpos == 0 { return nil }
            if sh == h {
                let (klen, dlen) = try pair(at: Int(rpos))
                // (A length past the end of the file is corruption, not a reason to allocate it.)
                if Int(rpos) + 8 + Int(klen) + Int(dlen) > size { throw SysError("read", errno: EPROTO) }
                if Int(klen) == key.count {
                    if !key.isEmpty {
                        try candidate.withUnsafeMutableBytes { try read($0.baseAddress!, key.count, at: Int(rpos) + 8) }
                    }
                    if candidate == key {
                        var data = [UInt8](repeating: 0, count: Int(dlen))
                        if dlen > 0 {
                            try data.withUnsafeMutableBytes { try read($0.baseAddress!, Int(dlen), at: Int(rpos) + 8 + key.count) }
                        }
                        return data
                    }
                }
            }
            slot += 1
            if slot == Int(hslots) { slot = 0 }
        }
        return nil
    }
}
