// The message vdelivermail delivers. qmail-local hands programs the queue
// file itself on fd 0 (seekable); anything else (a pipe in a test, a
// hand-run) is first copied into an unlinked temporary file so that every target can
// read the message from the start.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public final class MessageInput {
    public let fd: Int32
    /// The message's size in bytes (without the lines we add).
    public let size: Int

    public init(fd: Int32) throws {
        if lseek(fd, 0, SEEK_SET) == 0, let st = try? Sys.fstat(fd), (st.st_mode & S_IFMT) == S_IFREG {
            self.fd = fd
            self.size = Int(st.st_size)
            return
        }
        // An unlinked temporary file: gone when we exit, whatever happens.
        var template = Array("/tmp/vdelivermail.XXXXXX".utf8CString)
        let copy = mkstemp(&template)
        if copy < 0 { throw MailFailure.temporary("unable to create a spool file: \(Sys.strerror(errno))") }
        _ = unlink(template)
        _ = fcntl(copy, F_SETFD, FD_CLOEXEC)
        var total = 0
        do {
            try ByteReader(fd: fd, capacity: 65536).forEachChunk { chunk in
                try Sys.writeAll(copy, chunk.baseAddress!, chunk.count)
                total += chunk.count
            }
        } catch {
            Sys.close(copy)
            throw MailFailure.temporary("unable to read the message: \(error)")
        }
        self.fd = copy
        self.size = total
    }

    /// A reader positioned `offset` bytes into the message.
    public func reader(from offset: Int = 0) throws -> ByteReader {
        if Int(lseek(fd, off_t(offset), SEEK_SET)) != offset {
            throw MailFailure.temporary("unable to rewind the message: \(Sys.strerror(errno))")
        }
        return ByteReader(fd: fd, capacity: 65536)
    }

    /// Rewinds and returns the descriptor (for a child's stdin).
    public func rewound() throws -> Int32 {
        if lseek(fd, 0, SEEK_SET) != 0 { throw MailFailure.temporary("unable to rewind the message: \(Sys.strerror(errno))") }
        return fd
    }

    /// Calls `body` with each header line (without its line end) and the
    /// offset just after it, until the blank line or until `body` says stop.
    public func forEachHeaderLine(_ body: ([UInt8], Int) throws -> Bool) throws {
        let r = try reader()
        var end = 0
        while let (l, _) = try r.line(limit: 8192) {
            end += l.count
            var t = l
            while let last = t.last, last == Ascii.lf || last == Ascii.cr { t.removeLast() }
            if t.isEmpty { return }
            if try body(t, end) { return }
        }
    }

    /// True when the header already carries `line` (without its newline),
    /// compared case-insensitively: the mail has been here before.
    public func headerContains(_ line: [UInt8]) throws -> Bool {
        var found = false
        try forEachHeaderLine { t, _ in
            found = t.caseInsensitiveEquals(line)
            return found
        }
        return found
    }
}
