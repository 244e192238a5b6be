// A cdb builder for large forwarding tables (newaliases' 100,000 records):
// records stream to the file through a 64 KiB buffer, only the (hash,
// position) pairs stay in memory, and the tables go out in one pass at the
// end. Same format, same bytes as djb's cdb_make: records in insertion
// order, each table filled in insertion order with linear probing from
// (hash >> 8) % slots.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

final class CdbBuild {
    private let fd: Int32
    /// Bytes waiting to be written: raw memory, so that appending a record
    /// is two copies, with no array bookkeeping per byte.
    private let buf: UnsafeMutablePointer<UInt8>
    private var used = 0
    private var pos = 2048 // file offset of the next byte
    private var hashes: [UInt32] = []
    private var positions: [UInt32] = []
    private static let bufferSize = 65536

    init(fd: Int32) throws {
        self.fd = fd
        if lseek(fd, 2048, SEEK_SET) != 2048 { throw SysError("lseek") }
        buf = UnsafeMutablePointer<UInt8>.allocate(capacity: CdbBuild.bufferSize)
    }

    deinit { buf.deallocate() }

    private func flush() throws {
        if used == 0 { return }
        try Sys.writeAll(fd, buf, used)
        used = 0
    }

    @inline(__always) private func putLE(_ v: UInt32) {
        buf[used] = UInt8(truncatingIfNeeded: v)
        buf[used + 1] = UInt8(truncatingIfNeeded: v >> 8)
        buf[used + 2] = UInt8(truncatingIfNeeded: v >> 16)
        buf[used + 3] = UInt8(truncatingIfNeeded: v >> 24)
        used += 4
    }

    /// Copies `b`, flushing as the buffer fills (a record may be larger than it).
    private func put(_ b: UnsafeBufferPointer<UInt8>) throws {
        var from = 0
        while from < b.count {
            if used == CdbBuild.bufferSize { try flush() }
            let n = min(b.count - from, CdbBuild.bufferSize - used)
            (buf + used).update(from: b.baseAddress! + from, count: n)
            used += n
            from += n
        }
    }

    func add(_ key: [UInt8], _ data: [UInt8]) throws {
        let length = 8 + key.count + data.count
        if pos + length > Int(UInt32.max) - 2048 { throw CdbError.tooBig }
        hashes.append(CdbHash.hash(key))
        positions.append(UInt32(pos))
        if used + 8 > CdbBuild.bufferSize { try flush() }
        putLE(UInt32(key.count))
        putLE(UInt32(data.count))
        try key.withUnsafeBufferPointer { try put($0) }
        try data.withUnsafeBufferPointer { try put($0) }
        pos += length
    }

    /// Writes the tables and the header.
    func finish() throws {
        let n = hashes.count
        var counts = [Int](repeating: 0, count: 256)
        for h in hashes { counts[Int(h & 255)] += 1 }
        var start = [Int](repeating: 0, count: 256)
        var acc = 0
        for i in 0..<256 { start[i] = acc; acc += counts[i] }
        // Records grouped by table, insertion order kept within each.
        var order = [Int](repeating: 0, count: n)
        var fill = start
        for (r, h) in hashes.enumerated() {
            let b = Int(h & 255)
            order[fill[b]] = r
            fill[b] += 1
        }
        var header = [UInt8]()
        header.reserveCapacity(2048)
        var tableHash = [UInt32]()
        var tablePos = [UInt32]()
        for i in 0..<256 {
            let len = counts[i] * 2
            if pos + len * 8 > Int(UInt32.max) { throw CdbError.tooBig }
            for v in [UInt32(pos), UInt32(len)] {
                header.append(UInt8(truncatingIfNeeded: v)); header.append(UInt8(truncatingIfNeeded: v >> 8))
                header.append(UInt8(truncatingIfNeeded: v >> 16)); header.append(UInt8(truncatingIfNeeded: v >> 24))
            }
            if len == 0 { continue }
            tableHash.removeAll(keepingCapacity: true)
            tablePos.removeAll(keepingCapacity: true)
            tableHash.append(contentsOf: repeatElement(0, count: len))
            tablePos.append(contentsOf: repeatElement(0, count: len))
            for u in 0..<counts[i] {
                let r = order[start[i] + u]
                let h = hashes[r]
                var w = Int(h >> 8) % len
                while tablePos[w] != 0 { w += 1; if w == len { w = 0 } }
                tableHash[w] = h
                tablePos[w] = positions[r]
            }
            for w in 0..<len {
                if used + 8 > CdbBuild.bufferSize { try flush() }
                putLE(tableHash[w])
                putLE(tablePos[w])
            }
            pos += len * 8
        }
        try flush()
        if lseek(fd, 0, SEEK_SET) != 0 { throw SysError("lseek") }
        try Sys.writeAll(fd, header)
    }

    /// Builds a cdb at `path` through `tmp` (write, fsync, rename, fsync the
    /// directory); on any failure `path` is untouched and `tmp` removed.
    static func create(path: String, tmp: String, mode: mode_t,
                       records: (_ add: ([UInt8], [UInt8]) throws -> Void) throws -> Void) throws {
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        do {
            let b = try CdbBuild(fd: fd)
            try records { try b.add($0, $1) }
            try b.finish()
            try Sys.fsync(fd)
            if Glibc.close(fd) != 0 { throw SysError("close", path: tmp) }
        } catch {
            Sys.close(fd)
            _ = unlink(tmp)
            throw error
        }
        do { try Sys.rename(tmp, path) } catch {
            _ = unlink(tmp)
            throw error
        }
        try? Sys.fsyncDirectory(FileIO.directoryOf(path))
    }
}
