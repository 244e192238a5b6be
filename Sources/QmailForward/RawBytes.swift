// Byte storage for fastforward's lookup path, on malloc rather than in
// Swift arrays. fastforward lives about a millisecond per message, and in
// a process that short the first use of each array type costs more than
// the lookup: the runtime demangles the element type's name and
// instantiates the array's class metadata, touching pages of runtime code
// that a C program never maps (a third of fastforward's page faults, and
// the difference from djb's fastforward). Everything here is plain
// pointers and integers, so no generic metadata is made at run time.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// A run of bytes inside a ByteArena: offsets, so that they survive the
/// arena growing.
struct Span: Equatable {
    var start: Int
    var count: Int
}

/// A growable byte buffer. Not copyable in spirit: the owner frees it once.
struct ByteArena {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) throws {
        self.capacity = max(capacity, 64)
        guard let p = malloc(self.capacity) else { throw ForwardFatal.noMemory }
        base = p.assumingMemoryBound(to: UInt8.self)
    }

    func free() { Glibc.free(base) }

    /// Makes room for `extra` more bytes after `count`.
    mutating func reserve(_ extra: Int) throws {
        if count + extra <= capacity { return }
        var c = capacity
        while c < count + extra { c *= 2 }
        guard let p = realloc(base, c) else { throw ForwardFatal.noMemory }
        base = p.assumingMemoryBound(to: UInt8.self)
        capacity = c
    }

    /// Where the next bytes go; valid until the arena grows.
    var tail: UnsafeMutablePointer<UInt8> { base + count }

    /// Counts `n` bytes written at `tail` (after reserve) as part of the arena.
    mutating func commit(_ n: Int) -> Span {
        let s = Span(start: count, count: n)
        count += n
        return s
    }

    @discardableResult
    mutating func append(_ p: UnsafePointer<UInt8>, _ n: Int) throws -> Span {
        try reserve(n)
        if n > 0 { memcpy(tail, p, n) }
        return commit(n)
    }

    @discardableResult
    mutating func append(_ s: StaticString) throws -> Span {
        try append(s.utf8Start, s.utf8CodeUnitCount)
    }

    mutating func append(_ b: UInt8) throws {
        try reserve(1)
        base[count] = b
        count += 1
    }

    /// Appends bytes of the arena itself (safe across growth).
    @discardableResult
    mutating func append(_ s: Span) throws -> Span {
        try reserve(s.count)
        if s.count > 0 { memmove(tail, base + s.start, s.count) }
        return commit(s.count)
    }

    /// Drops everything after the first `n` bytes.
    mutating func truncate(_ n: Int) { count = min(count, n) }

    subscript(i: Int) -> UInt8 { base[i] }

    func bytes(_ s: Span) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base + s.start, count: s.count)
    }

    func equal(_ a: Span, _ b: Span) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(base + a.start, base + b.start, a.count) == 0)
    }

    func equal(_ a: Span, _ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        a.count == n && (n == 0 || memcmp(base + a.start, p, n) == 0)
    }

    func array(_ s: Span) -> [UInt8] { Array(bytes(s)) }

    /// First index of `b` in `s` searching backwards, or nil.
    func lastIndex(of b: UInt8, in s: Span) -> Int? {
        var i = s.start + s.count
        while i > s.start {
            i -= 1
            if base[i] == b { return i }
        }
        return nil
    }
}

/// A growable list of Spans.
struct SpanList {
    private(set) var items: UnsafeMutablePointer<Span>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        items = UnsafeMutablePointer<Span>.allocate(capacity: self.capacity)
    }

    func free() { items.deallocate() }

    mutating func append(_ s: Span) {
        if count == capacity {
            let bigger = UnsafeMutablePointer<Span>.allocate(capacity: capacity * 2)
            bigger.moveInitialize(from: items, count: count)
            items.deallocate()
            items = bigger
            capacity *= 2
        }
        (items + count).initialize(to: s)
        count += 1
    }

    mutating func popLast() -> Span? {
        if count == 0 { return nil }
        count -= 1
        return items[count]
    }

    subscript(i: Int) -> Span { items[i] }
}

/// A set of byte strings kept in an arena: open addressing on the cdb
/// hash, doubling at half full (no Hasher, so no random seed either).
struct SpanSet {
    private var members: SpanList
    private var table: UnsafeMutablePointer<Int32>
    private var slots: Int

    init() {
        members = SpanList(capacity: 32)
        slots = 64
        table = UnsafeMutablePointer<Int32>.allocate(capacity: slots)
        table.initialize(repeating: -1, count: slots)
    }

    func free() {
        members.free()
        table.deallocate()
    }

    private static func hash(_ arena: ByteArena, _ s: Span) -> Int {
        Int(CdbHash.hash(arena.bytes(s)))
    }

    /// Adds `s` (bytes of `arena`); false when an equal string was there already.
    mutating func insert(_ s: Span, in arena: ByteArena) -> Bool {
        var mask = slots - 1
        var i = SpanSet.hash(arena, s) & mask
        while table[i] >= 0 {
            if arena.equal(members[Int(table[i])], s) { return false }
            i = (i + 1) & mask
        }
        table[i] = Int32(members.count)
        members.append(s)
        if members.count * 2 > slots {
            table.deallocate()
            slots *= 2
            mask = slots - 1
            table = UnsafeMutablePointer<Int32>.allocate(capacity: slots)
            table.initialize(repeating: -1, count: slots)
            for n in 0..<members.count {
                var j = SpanSet.hash(arena, members[n]) & mask
                while table[j] >= 0 { j = (j + 1) & mask }
                table[j] = Int32(n)
            }
        }
        return true
    }
}
