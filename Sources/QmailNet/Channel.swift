// Buffered, timed byte I/O for network protocols. A Channel reads through a
// Stream (plain file descriptors now, TLS later) and never blocks longer
// than its timeout. Output is flushed only before the channel would block on
// input, which is how qmail-smtpd answers pipelined commands in one packet.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum ChannelError: Error, Equatable {
    case timeout
    case closed
    case io(Int32)
}

/// A byte transport: a pair of file descriptors, or a TLS session over them.
public protocol ByteStream: AnyObject {
    /// Reads at most `count` bytes; 0 means end of stream. Waits at most `timeout` seconds.
    func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int
    /// Writes every byte, waiting at most `timeout` seconds for each chunk.
    func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws
    /// True when bytes are buffered below this layer (TLS records already read).
    var hasPending: Bool { get }
}

public enum Poll {
    /// Waits until `fd` is ready for `events`; false on timeout.
    public static func wait(_ fd: Int32, events: Int16, timeout: Int) throws -> Bool {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let deadline = Sys.now() + timeout
        while true {
            let left = max(0, deadline - Sys.now())
            let ms = timeout <= 0 ? -1 : Int32(min(left, 1_000_000) * 1000)
            let r = poll(&p, 1, ms)
            if r > 0 { return true }
            if r == 0 { return false }
            if errno != EINTR { throw ChannelError.io(errno) }
        }
    }
}

/// Plain descriptors: input from `inFd`, output to `outFd` (0 and 1 under tcpserver).
public final class FdStream: ByteStream {
    public let inFd: Int32
    public let outFd: Int32

    public init(inFd: Int32 = 0, outFd: Int32 = 1) {
        self.inFd = inFd
        self.outFd = outFd
    }

    public var hasPending: Bool { false }

    public func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int {
        while true {
            guard try Poll.wait(inFd, events: Int16(POLLIN), timeout: timeout) else { throw ChannelError.timeout }
            let n = Glibc.read(inFd, buf, count)
            if n >= 0 { return n }
            if errno == EINTR || errno == EAGAIN { continue }
            if errno == ECONNRESET { return 0 }
            throw ChannelError.io(errno)
        }
    }

    public func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws {
        var done = 0
        while done < count {
            guard try Poll.wait(outFd, events: Int16(POLLOUT), timeout: timeout) else { throw ChannelError.timeout }
            let n = Glibc.write(outFd, buf + done, count - done)
            if n > 0 { done += n; continue }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            throw ChannelError.io(n < 0 ? errno : EPIPE)
        }
    }
}

/// Line and chunk reading with a fixed buffer, plus buffered output.
public final class Channel {
    public var stream: ByteStream
    public var timeout: Int
    private var inBuf: [UInt8]
    private var pos = 0
    private var end = 0
    private var out: [UInt8] = []
    public private(set) var atEOF = false

    public init(stream: ByteStream, timeout: Int, capacity: Int = 65536) {
        self.stream = stream
        self.timeout = timeout
        self.inBuf = [UInt8](repeating: 0, count: capacity)
        out.reserveCapacity(4096)
    }

    /// True when input is waiting in our buffer (a pipelining client).
    public var hasBufferedInput: Bool { pos < end || stream.hasPending }

    /// Bytes already read but not yet consumed (they must not survive STARTTLS).
    public var bufferedCount: Int { end - pos }

    public func discardBuffered() { pos = end }

    private func fill() throws -> Bool {
        if atEOF { return false }
        if !stream.hasPending { try flush() }
        let n = try inBuf.withUnsafeMutableBytes { try stream.read($0.baseAddress!, $0.count, timeout: timeout) }
        if n == 0 { atEOF = true; return false }
        pos = 0
        end = n
        return true
    }

    /// One line without its LF (and without a CR before the LF). Returns nil at
    /// end of input. A line longer than `limit` is consumed to its end and
    /// reported with `overflow`; only `limit` bytes are kept.
    public func readLine(limit: Int) throws -> (line: [UInt8], overflow: Bool)? {
        var line: [UInt8] = []
        var overflow = false
        while true {
            if pos == end {
                if try !fill() {
                    return line.isEmpty && !overflow ? nil : (line, overflow)
                }
            }
            var i = pos
            while i < end && inBuf[i] != Ascii.lf { i += 1 }
            let take = min(i - pos, max(0, limit - line.count))
            if take > 0 { line.append(contentsOf: inBuf[pos..<(pos + take)]) }
            if i - pos > take { overflow = true }
            if i < end {
                pos = i + 1
                if !overflow, line.last == Ascii.cr { line.removeLast() }
                return (line, overflow)
            }
            pos = end
        }
    }

    /// Runs `body` over buffered input until it reports how much it consumed
    /// and whether it is done. Returns false at end of input.
    public func scan(_ body: (UnsafeBufferPointer<UInt8>) throws -> (consumed: Int, done: Bool)) throws -> Bool {
        while true {
            if pos == end {
                if try !fill() { return false }
            }
            let r = try inBuf.withUnsafeBufferPointer { p in
                try body(UnsafeBufferPointer(rebasing: p[pos..<end]))
            }
            pos += r.consumed
            if r.done { return true }
        }
    }

    /// Reads exactly `count` bytes (for netstrings), or nil at end of input.
    public func read(exactly count: Int, into body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws -> Bool {
        var left = count
        while left > 0 {
            if pos == end {
                if try !fill() { return false }
            }
            let n = min(left, end - pos)
            try inBuf.withUnsafeBufferPointer { p in try body(UnsafeBufferPointer(rebasing: p[pos..<(pos + n)])) }
            pos += n
            left -= n
        }
        return true
    }

    public func byte() throws -> UInt8? {
        if pos == end {
            if try !fill() { return nil }
        }
        let b = inBuf[pos]
        pos += 1
        return b
    }

    public func put(_ bytes: [UInt8]) { out.append(contentsOf: bytes) }
    public func put(_ s: String) { out.append(contentsOf: s.utf8) }

    public func flush() throws {
        if out.isEmpty { return }
        try out.withUnsafeBytes { try stream.write($0.baseAddress!, $0.count, timeout: timeout) }
        out.removeAll(keepingCapacity: true)
    }
}
