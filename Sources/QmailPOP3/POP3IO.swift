// Line input and reply output for the POP3 programs.
//
// - Input lines are bounded: a longer line is consumed and discarded and
//   reported as `.tooLong`, so memory stays bounded whatever the client sends.
// - qmail-popup must not read past the command it acts on: after PASS the
//   connection belongs to checkpassword and qmail-pop3d, after STLS to TLS.
//   `exact` mode peeks at a socket (MSG_PEEK) and consumes only up to the
//   end of the line; on a pipe it reads byte by byte.
// - Every blocking read or write is covered by an alarm (qmail's 1200 s),
//   whose handler ends the process as qmail's timeoutread does.
// - A reply is sent in one write (no Nagle/delayed-ACK stalls).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum POP3Timeout {
    /// qmail-popup's and qmail-pop3d's read and write timeout.
    public static let seconds: UInt32 = 1200

    /// Installs the alarm handler: `code` is the exit code on timeout.
    public static func install(exitCode: Int32) {
        Sys.exitOnAlarm(code: exitCode)
        signal(SIGPIPE, SIG_IGN)
    }
}

public final class CommandReader {
    public enum Line: Equatable {
        case line([UInt8])
        case tooLong
        case eof
    }

    let fd: Int32
    let exact: Bool
    var isSocket = true
    var buf: [UInt8]
    var pos = 0
    var end = 0
    let timeout: UInt32

    public init(fd: Int32, exact: Bool, timeout: UInt32 = POP3Timeout.seconds) {
        self.fd = fd
        self.exact = exact
        self.timeout = timeout
        buf = [UInt8](repeating: 0, count: exact ? 4096 : 8192)
    }

    /// Bytes already read but not yet returned (buffered mode only).
    public var buffered: Int { end - pos }

    /// Fills the buffer; in exact mode only with bytes of the current line.
    private func fill() -> Bool {
        if timeout > 0 { alarm(timeout) }
        while true {
            var n: Int
            if !exact {
                n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            } else if isSocket {
                n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_PEEK)) }
                if n < 0 && errno == ENOTSOCK { isSocket = false; continue }
                if n > 0 {
                    let want = buf.withUnsafeBytes { p -> Int in
                        guard let hit = memchr(p.baseAddress!, 10, n) else { return n }
                        return p.baseAddress!.distance(to: UnsafeRawPointer(hit)) + 1
                    }
                    n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, want) }
                }
            } else {
                n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 1) }
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            pos = 0
            end = n
            return true
        }
    }

    /// The next line without its LF (and CR), at most `limit` bytes.
    public func next(limit: Int = 2048) -> Line {
        var out: [UInt8] = []
        var overflow = false
        while true {
            if pos == end {
                if !fill() { return (out.isEmpty && !overflow) ? .eof : (overflow ? .tooLong : .line(strip(out))) }
            }
            let (stop, found) = buf.withUnsafeBytes { p -> (Int, Bool) in
                guard let hit = memchr(p.baseAddress! + pos, 10, end - pos) else { return (end, false) }
                return (p.baseAddress!.distance(to: UnsafeRawPointer(hit)), true)
            }
            if !overflow {
                if out.count + (stop - pos) > limit {
                    overflow = true
                    out = []
                } else {
                    out.append(contentsOf: buf[pos..<stop])
                }
            }
            pos = found ? stop + 1 : stop
            if found { return overflow ? .tooLong : .line(strip(out)) }
        }
    }

    private func strip(_ l: [UInt8]) -> [UInt8] {
        l.last == Ascii.cr ? Array(l.dropLast()) : l
    }
}

/// Collects a reply and sends it with one write.
public final class ReplyWriter {
    public let fd: Int32
    public var buffer: [UInt8] = []
    let timeout: UInt32

    public init(fd: Int32, timeout: UInt32 = POP3Timeout.seconds) {
        self.fd = fd
        self.timeout = timeout
        buffer.reserveCapacity(8192)
    }

    public func put(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    public func put(_ s: String) { buffer.append(contentsOf: s.utf8) }

    /// Writes the buffer; false when the peer is gone or the write failed.
    @discardableResult
    public func flush() -> Bool {
        if buffer.isEmpty { return true }
        if timeout > 0 { alarm(timeout) }
        let ok = (try? Sys.writeAll(fd, buffer)) != nil
        buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
        return ok
    }
}

/// A command line split as qmail's commands.c does: the verb up to the first
/// space (case-insensitive), the argument after any further spaces.
public struct POP3Command {
    public let verb: [UInt8]
    public let arg: [UInt8]

    public init(_ line: [UInt8]) {
        let sp = line.firstIndex(of: Ascii.space) ?? line.count
        verb = line[0..<sp].map(Ascii.lower)
        var i = sp
        while i < line.count && line[i] == Ascii.space { i += 1 }
        arg = Array(line[i...])
    }

    public func isVerb(_ s: String) -> Bool { verb.elementsEqual(s.utf8) }
}
