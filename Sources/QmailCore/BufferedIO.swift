// Explicit buffered input and output over file descriptors, the way qmail's
// substdio works: no Foundation, no hidden copies, errors surface as values.
#if canImport(Glibc)
import Glibc
#endif

/// Reads a file descriptor through a fixed buffer.
public final class ByteReader {
    public let fd: Int32
    private var buf: [UInt8]
    private var pos = 0
    private var end = 0
    public private(set) var atEOF = false

    public init(fd: Int32, capacity: Int = 8192) {
        self.fd = fd
        self.buf = [UInt8](repeating: 0, count: capacity)
    }

    /// Refills the buffer; returns false at end of file.
    private func fill() throws -> Bool {
        if atEOF { return false }
        let n = try buf.withUnsafeMutableBytes { try Sys.read(fd, $0.baseAddress!, $0.count) }
        if n == 0 { atEOF = true; return false }
        pos = 0
        end = n
        return true
    }

    /// The next byte, or nil at end of file.
    public func byte() throws -> UInt8? {
        if pos == end { if try !fill() { return nil } }
        let b = buf[pos]
        pos += 1
        return b
    }

    /// Bytes up to and including `delimiter`, at most `limit` bytes. Returns
    /// nil at end of file with nothing read; a last line without delimiter is
    /// returned as is. `overflow` is set when the limit cut the line.
    public func line(delimiter: UInt8 = 10, limit: Int = Int.max) throws -> (bytes: [UInt8], overflow: Bool)? {
        var out: [UInt8] = []
        while true {
            if pos == end {
                if try !fill() { return out.isEmpty ? nil : (out, false) }
            }
            let avail = end - pos
            var i = pos
            let stop = pos + min(avail, limit - out.count)
            while i < stop && buf[i] != delimiter { i += 1 }
            if i < stop {
                out.append(contentsOf: buf[pos...i])
                pos = i + 1
                return (out, false)
            }
            out.append(contentsOf: buf[pos..<stop])
            pos = stop
            if out.count >= limit { return (out, true) }
        }
    }

    /// Calls `body` with each chunk until end of file.
    public func forEachChunk(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if pos < end {
            try buf.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[pos..<end])) }
            pos = end
        }
        while try fill() {
            try buf.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
            pos = end
        }
    }

    /// Passes exactly `count` bytes to `body` in chunks; false when the
    /// input ends first.
    public func copy(count: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        var left = count
        while left > 0 {
            if pos == end { if try !fill() { return false } }
            let n = min(left, end - pos)
            try buf.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[pos..<(pos + n)])) }
            pos += n
            left -= n
        }
        return true
    }

    /// Exactly `count` bytes, or nil when the input ends first.
    public func bytes(count: Int) throws -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(min(count, 1 << 20))
        let complete = try copy(count: count) { out.append(contentsOf: $0) }
        return complete ? out : nil
    }

    /// Everything left, up to `limit` bytes (nil when the input is longer).
    public func readAll(limit: Int = Int.max) throws -> [UInt8]? {
        var out: [UInt8] = []
        var tooLong = false
        try forEachChunk { chunk in
            if tooLong { return }
            if out.count + chunk.count > limit { tooLong = true; return }
            out.append(contentsOf: chunk)
        }
        return tooLong ? nil : out
    }
}

/// Writes to a file descriptor through a buffer; `flush` must be called.
public final class ByteWriter {
    public let fd: Int32
    private var buf: [UInt8] = []
    private let capacity: Int

    public init(fd: Int32, capacity: Int = 8192) {
        self.fd = fd
        self.capacity = capacity
        buf.reserveCapacity(capacity)
    }

    public func put(_ bytes: [UInt8]) throws {
        if buf.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try Sys.writeAll(fd, bytes)
        } else {
            buf.append(contentsOf: bytes)
        }
    }

    public func put<C: Collection>(_ bytes: C) throws where C.Element == UInt8 {
        try put(Array(bytes))
    }

    public func put(_ raw: UnsafeRawBufferPointer) throws {
        if buf.count + raw.count > capacity { try flush() }
        if raw.count >= capacity {
            if let base = raw.baseAddress { try Sys.writeAll(fd, base, raw.count) }
        } else {
            buf.append(contentsOf: raw)
        }
    }

    public func put(_ s: String) throws { try put(Array(s.utf8)) }

    public func put(byte: UInt8) throws {
        if buf.count >= capacity { try flush() }
        buf.append(byte)
    }

    public func flush() throws {
        if buf.isEmpty { return }
        try Sys.writeAll(fd, buf)
        buf.removeAll(keepingCapacity: true)
    }
}
