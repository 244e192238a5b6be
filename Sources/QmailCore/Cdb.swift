// djb's constant database, byte for byte: a 2048-byte header of 256
// (position, slot count) pairs, then records (key length, data length, key,
// data), then 256 open-addressed hash tables of (hash, record position)
// pairs. All numbers are 32-bit little-endian. A file written here is read
// by tinycdb, ucspi-tcp and fastforward, and the other way round.
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

/// Read access to a cdb file, mapped into memory.
public final class CdbReader {
    private let base: UnsafeRawPointer?
    private let size: Int

    /// Opens `path`; nil when the file does not exist.
    public static func open(_ path: String) throws -> CdbReader? {
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch let e as SysError where e.errno == ENOENT { return nil }
        defer { Sys.close(fd) }
        return try CdbReader(fd: fd)
    }

    public init(fd: Int32) throws {
        let st = try Sys.fstat(fd)
        size = Int(st.st_size)
        if size < 2048 { throw CdbError.format("file shorter than its header") }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw SysError("mmap")
        }
        base = UnsafeRawPointer(p)
    }

    /// A reader over bytes already in memory (tests, fuzzing).
    public init(bytes: [UInt8]) throws {
        if bytes.count < 2048 { throw CdbError.format("file shorter than its header") }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 8)
        bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        base = UnsafeRawPointer(p)
        size = bytes.count
        ownsMemory = true
    }

    private var ownsMemory = false

    deinit {
        guard let base else { return }
        if ownsMemory {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        } else {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
    }

    private func u32(_ pos: Int) throws -> Int {
        guard pos >= 0, pos + 4 <= size, let base else { throw CdbError.format("read past end") }
        let b = base + pos
        return Int(b.load(fromByteOffset: 0, as: UInt8.self))
            | Int(b.load(fromByteOffset: 1, as: UInt8.self)) << 8
            | Int(b.load(fromByteOffset: 2, as: UInt8.self)) << 16
            | Int(b.load(fromByteOffset: 3, as: UInt8.self)) << 24
    }

    private func bytes(_ pos: Int, _ len: Int) throws -> [UInt8] {
        guard pos >= 0, len >= 0, pos + len <= size, let base else { throw CdbError.format("read past end") }
        return Array(UnsafeRawBufferPointer(start: base + pos, count: len))
    }

    private func keyEquals(_ pos: Int, _ key: [UInt8]) throws -> Bool {
        guard pos >= 0, pos + key.count <= size, let base else { throw CdbError.format("read past end") }
        return key.withUnsafeBytes { k in
            k.count == 0 || memcmp(base + pos, k.baseAddress!, k.count) == 0
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
        let h = CdbHash.hash(key)
        let table = Int(h & 255) * 8
        let hpos = try u32(table)
        let hslots = try u32(table + 4)
        if hslots == 0 { return }
        var slot = Int(h >> 8) % hslots
        for _ in 0..<hslots {
            let spos = hpos + slot * 8
            let sh = try u32(spos)
            let rpos = try u32(spos + 4)
            if rpos == 0 { return }
            if UInt32(truncatingIfNeeded: sh) == h {
                let klen = try u32(rpos)
                if klen == key.count, try keyEquals(rpos + 8, key) {
                    let dlen = try u32(rpos + 4)
                    if try !body(try bytes(rpos + 8 + klen, dlen)) { return }
                }
            }
            slot += 1
            if slot == hslots { slot = 0 }
        }
    }

    /// Every (key, data) record in file order, as `cdb -d` lists them.
    public func records() throws -> [(key: [UInt8], data: [UInt8])] {
        // Records run from 2048 to the lowest hash-table position.
        var end = size
        for i in 0..<256 { end = min(end, try u32(i * 8)) }
        var out: [(key: [UInt8], data: [UInt8])] = []
        var pos = 2048
        while pos < end {
            let klen = try u32(pos)
            let dlen = try u32(pos + 4)
            guard pos + 8 + klen + dlen <= end else { throw CdbError.format("record runs past the tables") }
            out.append((try bytes(pos + 8, klen), try bytes(pos + 8 + klen, dlen)))
            pos += 8 + klen + dlen
        }
        return out
    }
}

/// Builds a cdb in memory-light fashion: records stream to the file, the
/// hash tables are written at the end. Use `CdbWriter.create` to get the
/// temp-file + fsync + rename discipline qmail's cdb builders follow.
public final class CdbWriter {
    private struct Slot { var hash: UInt32; var pos: UInt32 }
    private let out: ByteWriter
    private var slots: [Slot] = []
    private var pos: Int = 2048
    private let fd: Int32

    public init(fd: Int32) throws {
        self.fd = fd
        out = ByteWriter(fd: fd, capacity: 65536)
        try out.put([UInt8](repeating: 0, count: 2048))
    }

    private static func le(_ v: Int) -> [UInt8] {
        [UInt8(v & 255), UInt8((v >> 8) & 255), UInt8((v >> 16) & 255), UInt8((v >> 24) & 255)]
    }

    public func add(_ key: [UInt8], _ data: [UInt8]) throws {
        let recordLength = 8 + key.count + data.count
        if pos + recordLength > Int(UInt32.max) - 2048 || key.count > Int(UInt32.max) { throw CdbError.tooBig }
        slots.append(Slot(hash: CdbHash.hash(key), pos: UInt32(pos)))
        try out.put(CdbWriter.le(key.count))
        try out.put(CdbWriter.le(data.count))
        try out.put(key)
        try out.put(data)
        pos += recordLength
    }

    /// Writes the hash tables and the header. Does not fsync or close.
    public func finish() throws {
        var counts = [Int](repeating: 0, count: 256)
        for s in slots { counts[Int(s.hash & 255)] += 1 }
        var start = [Int](repeating: 0, count: 256)
        var acc = 0
        for i in 0..<256 { start[i] = acc; acc += counts[i] }
        var split = [Slot](repeating: Slot(hash: 0, pos: 0), count: slots.count)
        var fill = start
        for s in slots {
            let b = Int(s.hash & 255)
            split[fill[b]] = s
            fill[b] += 1
        }
        var header = [UInt8]()
        header.reserveCapacity(2048)
        for i in 0..<256 {
            let count = counts[i]
            let len = count * 2
            header += CdbWriter.le(pos)
            header += CdbWriter.le(len)
            if len == 0 { continue }
            var table = [Slot](repeating: Slot(hash: 0, pos: 0), count: len)
            for u in 0..<count {
                let s = split[start[i] + u]
                var w = Int(s.hash >> 8) % len
                while table[w].pos != 0 { w += 1; if w == len { w = 0 } }
                table[w] = s
            }
            var buf = [UInt8]()
            buf.reserveCapacity(len * 8)
            for t in table {
                buf += CdbWriter.le(Int(t.hash))
                buf += CdbWriter.le(Int(t.pos))
            }
            if pos + buf.count > Int(UInt32.max) { throw CdbError.tooBig }
            try out.put(buf)
            pos += buf.count
        }
        try out.flush()
        if lseek(fd, 0, SEEK_SET) != 0 { throw SysError("lseek") }
        try Sys.writeAll(fd, header)
    }

    /// Writes a complete cdb at `path` from `records`, through `path.tmp`
    /// (or `tmpPath`), fsync and rename, so readers see the old file or the
    /// new one, never a partial one.
    public static func create(path: String, tmpPath: String? = nil, mode: mode_t = 0o644,
                              records: ((_ add: ([UInt8], [UInt8]) throws -> Void) throws -> Void)) throws {
        let tmp = tmpPath ?? path + ".tmp"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        do {
            let w = try CdbWriter(fd: fd)
            try records { try w.add($0, $1) }
            try w.finish()
            try Sys.fsync(fd)
            Sys.close(fd)
            try Sys.rename(tmp, path)
        } catch {
            Sys.close(fd)
            _ = Glibc.unlink(tmp)
            throw error
        }
        try? Sys.fsyncDirectory(FileIO.directoryOf(path))
    }
}
