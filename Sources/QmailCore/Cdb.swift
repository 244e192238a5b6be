// djb's constant database, byte for byte: a 2048-byte header of 256
// (position, slot count) pairs, then records (key length, data length, key,
// data), then 256 open-addressed hash tables of (hash, record position)
// pairs. All numbers are 32-bit little-endian. A file written here is read
// by tinycdb, ucspi-tcp and fastforward, and the other way round.
//
// One reader and one writer serve every program (tcpserver's rules,
// rcpthosts, users/cdb, fastforward's tables, vpopmail-style domains):
// - The reader looks keys up with pread, as djb's cdb_seek does: a few
//   8-byte reads per key and one read each for the candidate key and the
//   data. Programs here open a cdb, ask one to a dozen keys and exit, so
//   mapping a multi-megabyte table (and faulting its pages in) costs more
//   than the reads. Its lookup core uses raw pointers only, so that
//   fastforward, which lives about a millisecond, makes no Swift array on
//   that path.
// - The writer streams records to the file through a 64 KiB buffer and
//   keeps only (hash, position) per record in memory, so newaliases' 100,000
//   records take a few megabytes; the tables are written at the end in
//   cdb_make's order, so the bytes equal cdbmake's.
#if canImport(Glibc)
import Glibc
#endif

public enum CdbError: Error, CustomStringConvertible {
    case format(String)
    case tooBig

    public var description: String {
        switch self {
        case .format(let s): return "cdb format error: \(s)"
        case .tooBig: return "cdb would exceed 4 GiB"
        }
    }
}

public enum CdbHash {
    @inlinable public static func hash<C: Collection>(_ key: C) -> UInt32 where C.Element == UInt8 {
        var h: UInt32 = 5381
        for c in key { h = (h &+ (h << 5)) ^ UInt32(c) }
        return h
    }
}

/// Lookups in a cdb file (by pread) or in cdb bytes held in memory.
public final class CdbReader {
    /// The open file, or -1 for a reader over `memory`.
    private let fd: Int32
    private let memory: UnsafeMutableRawPointer?
    public let size: Int
    /// Where a candidate key is read to be compared; grows to the longest key asked.
    private var scratch: UnsafeMutableRawPointer?
    private var scratchSize = 0

    /// Opens a NUL-terminated path without making a Swift string (for
    /// fastforward); nil with `e` set to the errno on failure (EPROTO for a
    /// file too short to hold the header).
    public init?(path: UnsafePointer<CChar>, errno e: inout Int32) {
        fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { e = Glibc.errno; return nil }
        var st = stat()
        if fstat(fd, &st) != 0 { e = Glibc.errno; Glibc.close(fd); return nil }
        if st.st_size < 2048 { e = EPROTO; Glibc.close(fd); return nil }
        size = Int(st.st_size)
        memory = nil
    }

    /// Opens `path`; nil when the file does not exist.
    public static func open(_ path: String) throws -> CdbReader? {
        var e: Int32 = 0
        if let r = CdbReader(path: path, errno: &e) { return r }
        if e == ENOENT { return nil }
        if e == EPROTO { throw CdbError.format("file shorter than its header") }
        throw SysError("open", path: path, errno: e)
    }

    /// A reader over bytes already in memory (tests, fuzzing).
    public init(bytes: [UInt8]) throws {
        if bytes.count < 2048 { throw CdbError.format("file shorter than its header") }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 8)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        memory = p
        size = bytes.count
        fd = -1
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
        memory?.deallocate()
        scratch.map { Glibc.free($0) }
    }

    /// Reads `count` bytes at `offset` into `buf`; past the end of the file is a format error.
    public func read(into buf: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        guard offset >= 0, count >= 0, offset <= size - count else { throw CdbError.format("read past end") }
        if let memory {
            if count > 0 { buf.copyMemory(from: memory + offset, byteCount: count) }
            return
        }
        var done = 0
        while done < count {
            let n = pread(fd, buf + done, count - done, off_t(offset + done))
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw SysError("read")
            }
            if n == 0 { throw CdbError.format("file shrank while read") }
            done += n
        }
    }

    private func pair(at offset: Int) throws -> (Int, Int) {
        var b: (UInt32, UInt32) = (0, 0)
        try withUnsafeMutableBytes(of: &b) { try read(into: $0.baseAddress!, count: 8, at: offset) }
        return (Int(UInt32(littleEndian: b.0)), Int(UInt32(littleEndian: b.1)))
    }

    private func scratch(_ n: Int) throws -> UnsafeMutableRawPointer {
        if n > scratchSize || scratch == nil {
            guard let p = realloc(scratch, max(n, 64)) else { throw SysError("malloc", errno: ENOMEM) }
            scratch = p
            scratchSize = max(n, 64)
        }
        return scratch!
    }

    /// Calls `body` with the position and length of the data of each record
    /// for `key`, in file order, until it returns false (djb's
    /// cdb_findstart/cdb_findnext).
    public func forEachData(_ key: UnsafeRawBufferPointer, _ body: (_ position: Int, _ length: Int) throws -> Bool) throws {
        let h = CdbHash.hash(key)
        let (hpos, hslots) = try pair(at: Int(h & 255) * 8)
        if hslots == 0 { return }
        var slot = Int(h >> 8) % hslots
        for _ in 0..<hslots {
            let (sh, rpos) = try pair(at: hpos + slot * 8)
            if rpos == 0 { return }
            if UInt32(sh) == h {
                let (klen, dlen) = try pair(at: rpos)
                // (A length past the end is corruption, not a reason to allocate it.)
                if rpos + 8 + klen + dlen > size { throw CdbError.format("record runs past the end") }
                if klen == key.count {
                    var same = true
                    if klen > 0 {
                        let s = try scratch(klen)
                        try read(into: s, count: klen, at: rpos + 8)
                        same = memcmp(s, key.baseAddress!, klen) == 0
                    }
                    if same, try !body(rpos + 8 + klen, dlen) { return }
                }
            }
            slot += 1
            if slot == hslots { slot = 0 }
        }
    }

    /// The position and length of the first record's data for `key`.
    public func locate(_ key: UnsafeRawBufferPointer) throws -> (position: Int, length: Int)? {
        var found: (Int, Int)?
        try forEachData(key) { found = ($0, $1); return false }
        return found
    }

    private func bytes(_ pos: Int, _ len: Int) throws -> [UInt8] {
        if len == 0 { return [] }
        guard pos >= 0, len >= 0, pos <= size - len else { throw CdbError.format("read past end") }
        return try [UInt8](unsafeUninitializedCapacity: len) { buf, n in
            try read(into: buf.baseAddress!, count: len, at: pos)
            n = len
        }
    }

    /// The first record for `key`.
    public func find(_ key: [UInt8]) throws -> [UInt8]? {
        var found: [UInt8]?
        try forEach(key) { found = $0; return false }
        return found
    }

    /// Every record for `key`, in file order.
    public func findAll(_ key: [UInt8]) throws -> [[UInt8]] {
        var all: [[UInt8]] = []
        try forEach(key) { all.append($0); return true }
        return all
    }

    /// Calls `body` with each record's data for `key` until it returns false.
    public func forEach(_ key: [UInt8], _ body: ([UInt8]) throws -> Bool) throws {
        try key.withUnsafeBytes { k in
            try forEachData(k) { try body(try bytes($0, $1)) }
        }
    }

    /// Every (key, data) record in file order, as `cdb -d` lists them.
    public func records() throws -> [(key: [UInt8], data: [UInt8])] {
        // Records run from 2048 to the lowest hash-table position: one read.
        var header = [UInt8](repeating: 0, count: 2048)
        try header.withUnsafeMutableBytes { try read(into: $0.baseAddress!, count: 2048, at: 0) }
        var end = size
        for i in 0..<256 {
            end = min(end, Int(header[i * 8]) | Int(header[i * 8 + 1]) << 8
                | Int(header[i * 8 + 2]) << 16 | Int(header[i * 8 + 3]) << 24)
        }
        if end < 2048 { throw CdbError.format("table before the records") }
        let all = try bytes(2048, end - 2048)
        func u32(_ p: Int) -> Int { Int(all[p]) | Int(all[p + 1]) << 8 | Int(all[p + 2]) << 16 | Int(all[p + 3]) << 24 }
        var out: [(key: [UInt8], data: [UInt8])] = []
        var pos = 0
        while pos < all.count {
            guard pos + 8 <= all.count else { throw CdbError.format("record runs past the tables") }
            let klen = u32(pos)
            let dlen = u32(pos + 4)
            guard pos + 8 + klen + dlen <= all.count else { throw CdbError.format("record runs past the tables") }
            out.append((Array(all[(pos + 8)..<(pos + 8 + klen)]), Array(all[(pos + 8 + klen)..<(pos + 8 + klen + dlen)])))
            pos += 8 + klen + dlen
        }
        return out
    }
}

/// Writes a cdb: records stream to the file, only (hash, position) per
/// record stays in memory, the tables and header are written by `finish`.
/// Use `CdbWriter.create` for the temp-file + fsync + rename discipline
/// qmail's cdb builders follow.
public final class CdbWriter {
    private let fd: Int32
    /// Bytes waiting to be written: raw memory, so that appending a record
    /// is two copies, with no array bookkeeping per byte.
    private let buf: UnsafeMutablePointer<UInt8>
    private var used = 0
    private var pos = 2048 // file offset of the next byte
    private var hashes: [UInt32] = []
    private var positions: [UInt32] = []
    private static let bufferSize = 65536

    /// Writes to `fd` from offset 2048 on; the header goes to offset 0 at the end.
    public init(fd: Int32) throws {
        self.fd = fd
        if lseek(fd, 2048, SEEK_SET) != 2048 { throw SysError("lseek") }
        buf = UnsafeMutablePointer<UInt8>.allocate(capacity: CdbWriter.bufferSize)
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
            if used == CdbWriter.bufferSize { try flush() }
            let n = min(b.count - from, CdbWriter.bufferSize - used)
            (buf + used).update(from: b.baseAddress! + from, count: n)
            used += n
            from += n
        }
    }

    public func add(_ key: [UInt8], _ data: [UInt8]) throws {
        let length = 8 + key.count + data.count
        if pos + length > Int(UInt32.max) - 2048 { throw CdbError.tooBig }
        hashes.append(CdbHash.hash(key))
        positions.append(UInt32(pos))
        if used + 8 > CdbWriter.bufferSize { try flush() }
        putLE(UInt32(key.count))
        putLE(UInt32(data.count))
        try key.withUnsafeBufferPointer { try put($0) }
        try data.withUnsafeBufferPointer { try put($0) }
        pos += length
    }

    /// Writes the hash tables and the header. Does not fsync or close.
    public func finish() throws {
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
            // Linear probing from (hash >> 8) % slots, in insertion order: cdb_make's table.
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
                if used + 8 > CdbWriter.bufferSize { try flush() }
                putLE(tableHash[w])
                putLE(tablePos[w])
            }
            pos += len * 8
        }
        try flush()
        if lseek(fd, 0, SEEK_SET) != 0 { throw SysError("lseek") }
        try Sys.writeAll(fd, header)
    }

    /// Writes a complete cdb at `path` from `records`, through `path.tmp`
    /// (or `tmpPath`): write, fsync, close, rename, fsync the directory, so
    /// readers see the old file or the new one, never a partial one. On any
    /// failure `path` is untouched and the temporary file removed.
    public static func create(path: String, tmpPath: String? = nil, mode: mode_t = 0o644,
                              records: ((_ add: ([UInt8], [UInt8]) throws -> Void) throws -> Void)) throws {
        let tmp = tmpPath ?? path + ".tmp"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        var open = true
        do {
            let w = try CdbWriter(fd: fd)
            try records { try w.add($0, $1) }
            try w.finish()
            try Sys.fsync(fd)
            open = false
            if Glibc.close(fd) != 0 { throw SysError("close", path: tmp) }
        } catch {
            if open { Sys.close(fd) }
            _ = Glibc.unlink(tmp)
            throw error
        }
        do { try Sys.rename(tmp, path) } catch {
            _ = Glibc.unlink(tmp)
            throw error
        }
        try? Sys.fsyncDirectory(FileIO.directoryOf(path))
    }
}
