// A cdb builder for large forwarding tables: records are packed into one
// memory buffer and written with the hash tables in one go (the shared
// CdbWriter streams through a small buffer, record by record, which costs
// twice as much for newaliases' 100,000 records). Same format, same bytes:
// records in insertion order, each table filled in insertion order with
// linear probing from (hash >> 8) % slots, as djb's cdb_make does.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

final class CdbBuild {
    private var out: [UInt8]
    private var hashes: [UInt32] = []
    private var positions: [UInt32] = []

    init(expectedBytes: Int = 0) {
        out = []
        out.reserveCapacity(2048 + expectedBytes)
        out.append(contentsOf: repeatElement(0, count: 2048))
    }

    @inline(__always) private func putLE(_ v: UInt32) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v >> 16))
        out.append(UInt8(truncatingIfNeeded: v >> 24))
    }

    func add(_ key: [UInt8], _ data: [UInt8]) throws {
        let pos = out.count
        if pos + 8 + key.count + data.count > Int(UInt32.max) - 2048 { throw CdbError.tooBig }
        hashes.append(CdbHash.hash(key))
        positions.append(UInt32(pos))
        putLE(UInt32(key.count))
        putLE(UInt32(data.count))
        out += key
        out += data
    }

    /// The complete file.
    func finish() throws -> [UInt8] {
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
            let here = out.count
            if here + len * 8 > Int(UInt32.max) { throw CdbError.tooBig }
            for v in [UInt32(here), UInt32(len)] {
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
                putLE(tableHash[w])
                putLE(tablePos[w])
            }
        }
        out.withUnsafeMutableBufferPointer { p in
            for i in 0..<2048 { p[i] = header[i] }
        }
        return out
    }

    /// Builds a cdb at `path` through `tmp` (write, fsync, rename, fsync the
    /// directory); on any failure `path` is untouched and `tmp` removed.
    static func create(path: String, tmp: String, mode: mode_t, expectedBytes: Int = 0,
                       records: (_ add: ([UInt8], [UInt8]) throws -> Void) throws -> Void) throws {
        let b = CdbBuild(expectedBytes: expectedBytes)
        try records { try b.add($0, $1) }
        let bytes = try b.finish()
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        do {
            try Sys.writeAll(fd, bytes)
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
