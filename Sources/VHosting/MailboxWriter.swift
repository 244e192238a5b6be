// Final deliveries: Maildir (tmp -> fsync -> link into new -> unlink tmp,
// with the Maildir++ ",S=size" in the name so quota scans need no stat)
// and mbox (flock, append, fsync, truncate back on failure). Every failure
// here is temporary, as in qmail-local.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum MailboxWriter {
    nonisolated(unsafe) static var sequence = 0

    static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        if gethostname(&buf, buf.count - 1) != 0 { return "localhost" }
        let s = String(cString: buf)
        return s.replacingSlashesAndColons()
    }

    /// Delivers `header` + the message into `maildir`; returns the file
    /// name in new/.
    @discardableResult
    public static func maildir(_ maildir: String, header: [UInt8], message: MessageInput) throws -> String {
        sequence += 1
        let total = header.count + message.size
        let name = "\(Sys.now()).\(getpid())_\(sequence).\(hostname()),S=\(total)"
        let tmp = maildir + "/tmp/" + name
        let new = maildir + "/new/" + name
        let fd: Int32
        do {
            fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        } catch let e as SysError {
            throw MailFailure.temporary("unable to open \(tmp): \(Sys.strerror(e.errno))", e.errno == ENOENT ? "4.2.1" : "4.3.0")
        }
        do {
            let w = ByteWriter(fd: fd, capacity: 65536)
            try w.put(header)
            try message.reader().forEachChunk { try w.put($0) }
            try w.flush()
            try Sys.fsync(fd)
            Sys.close(fd)
        } catch {
            Sys.close(fd)
            _ = unlink(tmp)
            throw MailFailure.temporary("unable to write \(tmp): \(error)", "4.3.0")
        }
        do {
            try Sys.link(tmp, new)
        } catch {
            _ = unlink(tmp)
            throw MailFailure.temporary("unable to link into \(maildir)/new: \(error)")
        }
        _ = unlink(tmp)
        return name
    }

    /// Appends to an mbox the way qmail-local does: From_ line, header,
    /// ">From " quoting, a blank line; locked with flock; a failed write
    /// is cut off again so the mbox stays intact.
    public static func mbox(_ path: String, fromLine: [UInt8], header: [UInt8], message: MessageInput) throws {
        let fd: Int32
        do { fd = try Sys.open(path, O_WRONLY | O_APPEND | O_CREAT, 0o600) } catch {
            throw MailFailure.temporary("unable to open \(path): \(error)")
        }
        defer { Sys.close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw MailFailure.temporary("unable to lock \(path): \(Sys.strerror(errno))") }
        }
        let start = lseek(fd, 0, SEEK_END)
        do {
            let w = ByteWriter(fd: fd, capacity: 65536)
            try w.put(fromLine)
            try w.put(header)
            let r = try message.reader()
            while let (line, _) = try r.line(limit: 1 << 20) {
                var l = line[...]
                while l.first == 62 { l = l.dropFirst() } // '>'
                if l.starts(with: Array("From ".utf8)) { try w.put(byte: 62) }
                try w.put(line)
            }
            try w.put([Ascii.lf])
            try w.flush()
            try Sys.fsync(fd)
        } catch {
            if start >= 0 { _ = ftruncate(fd, start) }
            throw MailFailure.temporary("unable to write \(path): \(error)")
        }
    }
}

extension String {
    /// maildir(5): '/' and ':' in the host name are written as \057 and \072.
    func replacingSlashesAndColons() -> String {
        var out = ""
        for c in self {
            switch c {
            case "/": out += "\\057"
            case ":": out += "\\072"
            default: out.append(c)
            }
        }
        return out
    }
}
