// A fixed table of 24-byte records in one file, shared by many short-lived
// processes (one per connection) under an exclusive flock: the on-disk
// state of the login limits (HOME/authfail/failures) and of greylisting
// (HOME/greylist/triplets).
//
// A record is (key hash, deadline, value), little-endian; key 0 marks a
// free record. A key lives in one of `probes` records from a slot its hash
// picks, so a lookup is one pread; a record past its deadline is free
// again, and a full neighbourhood gives up the record nearest its deadline.
// The file never grows past `slots` records whatever the clients do, and a
// torn record (a crash in the middle of a write) spoils one key only.
#if canImport(Glibc)
import Glibc
#endif

public struct RecordTable {
    public struct Record: Equatable {
        public var key: UInt64 = 0
        public var deadline: Int = 0
        public var value: Int = 0

        public init(key: UInt64 = 0, deadline: Int = 0, value: Int = 0) {
            self.key = key
            self.deadline = deadline
            self.value = value
        }
    }

    static let recordSize = 24
    public let directory: String
    public let file: String
    public let slots: Int
    public let probes: Int
    /// A deadline further ahead than this is a torn or foreign record.
    public let maxAhead: Int

    public init(directory: String, file: String, slots: Int, probes: Int = 16, maxAhead: Int) {
        self.directory = directory
        self.file = file
        self.slots = max(slots, probes + 1)
        self.probes = probes
        self.maxAhead = maxAhead
    }

    public var path: String { directory + "/" + file }

    /// FNV-1a; never 0, which marks a free record.
    public static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h == 0 ? 1 : h
    }

    /// Runs `body` with the table open and locked; nil, with errno set,
    /// when it cannot be opened or locked (the directory is made, mode 700,
    /// when missing and its parent allows).
    public func withLocked<T>(_ body: (Int32) -> T) -> T? {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { return nil }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 { return nil }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { return nil }
        }
        return body(fd)
    }

    /// The live record for `key` (with its slot), or the slot to use for
    /// it: a free or expired one, else the one nearest its deadline.
    public func find(_ fd: Int32, _ key: UInt64, now t: Int) -> (slot: Int, record: Record?) {
        let first = Int(key % UInt64(slots - probes))
        let n = probes * RecordTable.recordSize
        var buf = [UInt8](repeating: 0, count: n)
        let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, off_t(first * RecordTable.recordSize)) }
        if got < n { for i in max(got, 0)..<n { buf[i] = 0 } }
        var spare = first
        var spareDeadline = Int.max
        for i in 0..<probes {
            let r = RecordTable.decode(buf, i * RecordTable.recordSize)
            let live = r.key != 0 && r.deadline > t && r.deadline <= t + maxAhead
            if live && r.key == key { return (first + i, r) }
            let d = live ? r.deadline : Int.min
            if d < spareDeadline { spare = first + i; spareDeadline = d }
        }
        return (spare, nil)
    }

    public func write(_ fd: Int32, _ slot: Int, _ r: Record) {
        var b = [UInt8](repeating: 0, count: RecordTable.recordSize)
        let d = UInt64(bitPattern: Int64(r.deadline))
        let v = UInt64(bitPattern: Int64(r.value))
        for i in 0..<8 {
            b[i] = UInt8(truncatingIfNeeded: r.key >> (8 * UInt64(i)))
            b[8 + i] = UInt8(truncatingIfNeeded: d >> (8 * UInt64(i)))
            b[16 + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))
        }
        _ = b.withUnsafeBytes { pwrite(fd, $0.baseAddress, b.count, off_t(slot * RecordTable.recordSize)) }
    }

    static func decode(_ b: [UInt8], _ at: Int) -> Record {
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + o + $1]) << (8 * UInt64($1)) } }
        return Record(key: u64(0), deadline: Int(truncatingIfNeeded: u64(8)), value: Int(truncatingIfNeeded: u64(16)))
    }
}
