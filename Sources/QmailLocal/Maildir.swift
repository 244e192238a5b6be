// Maildir delivery (maildir(5)): write tmp/NAME, fsync, link to new/NAME,
// unlink tmp/NAME. Readers only ever see complete messages in new/.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum MaildirName {
    /// "time.pid_seq.host": unique as long as the clock does not go back
    /// within one pid, and seq tells apart deliveries of one process.
    /// '/' and ':' in the host name are written as \057 and \072 (maildir(5)).
    public static func make(time: Int, pid: Int32, seq: Int, host: [UInt8]) -> [UInt8] {
        var out = Array("\(time).\(pid)_\(seq).".utf8)
        for c in host {
            switch c {
            case Ascii.slash: out += Array("\\057".utf8)
            case Ascii.colon: out += Array("\\072".utf8)
            default: out.append(c)
            }
        }
        return out
    }

    public static func hostname() -> [UInt8] {
        var buf = [CChar](repeating: 0, count: 256)
        if gethostname(&buf, buf.count - 1) != 0 { return Array("localhost".utf8) }
        let n = strlen(buf)
        return buf[0..<n].map { UInt8(bitPattern: $0) }
    }
}

public enum Maildir {
    nonisolated(unsafe) static var sequence = 0

    /// Delivers the message on `input` (read from its current offset),
    /// preceded by `header`, into the maildir `dir` (with or without trailing
    /// slash). Every failure is temporary, as in qmail.
    public static func deliver(dir: [UInt8], header: [UInt8], input: Int32) throws {
        var base = dir
        if base.last != Ascii.slash { base.append(Ascii.slash) }
        guard let st = BytePath.stat(base), (st.st_mode & S_IFMT) == S_IFDIR else {
            throw MailFailure.temporary("Unable to chdir to maildir.", "4.2.1")
        }
        sequence += 1
        let host = MaildirName.hostname()
        var name: [UInt8] = []
        var tmp: [UInt8] = []
        var fd: Int32 = -1
        for attempt in 0..<3 {
            name = MaildirName.make(time: Sys.now(), pid: getpid(), seq: sequence, host: host)
            tmp = base + Array("tmp/".utf8) + name
            fd = BytePath.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 { break }
            if errno != EEXIST || attempt == 2 {
                throw MailFailure.temporary("Temporary error on maildir delivery.")
            }
            sleep(2)
        }
        // Run as root (a single-user home made by root delivering into a
        // hosted domain's mailbox), the message goes to the Maildir's owner,
        // who reads and removes it over POP3.
        if geteuid() == 0 && st.st_uid != 0 { _ = fchown(fd, st.st_uid, st.st_gid) }
        let fresh = base + Array("new/".utf8) + name
        func fail(_ text: String = "Temporary error on maildir delivery.") -> MailFailure {
            BytePath.with(tmp) { _ = unlink($0) }
            return MailFailure.temporary(text)
        }
        do {
            let out = ByteWriter(fd: fd, capacity: 65536)
            try out.put(header)
            let reader = ByteReader(fd: input, capacity: 65536)
            do {
                try reader.forEachChunk { try out.put($0) }
            } catch let e as SysError where e.op == "read" {
                Sys.close(fd)
                throw fail("Unable to read message.")
            }
            try out.flush()
            try Sys.fsync(fd)
        } catch let f as MailFailure {
            throw f
        } catch {
            Sys.close(fd)
            throw fail()
        }
        if Glibc.close(fd) != 0 { throw fail() }
        let linked = BytePath.with(tmp) { t in BytePath.with(fresh) { Glibc.link(t, $0) } }
        if linked != 0 { throw fail() }
        BytePath.with(tmp) { _ = unlink($0) }
        // qmail relies on the file system to keep the new link; we also
        // fsync new/ so a crash right after success cannot lose it. Its
        // error is ignored on purpose: the message is in new/ already, and
        // some file systems refuse fsync on a directory (EINVAL), where a
        // failure report would deliver it again at every retry.
        //
        // Why this second commit stays (power lost at each step): before
        // the file's fsync, nothing was reported, so qmail-send delivers
        // again (a torn tmp/ file is never read: tmp/ is no reader's). After
        // it, tmp/NAME is whole on disk; the link and unlink go in the next
        // journal transaction. Until that commits, a loss leaves the message
        // in tmp/ only, and is harmless as long as qmail-send's record of
        // success is not on disk either. But that record is a "D" written
        // over local/N (Send.markDone): an overwrite, which ext4 neither
        // journals nor orders after earlier metadata, so the flusher may
        // write it before the link's transaction commits; and the Maildir
        // may be on another file system than the queue, with no order
        // between them at all. (Only the unlink of a finished local/N is
        // journaled, and only on one file system is it ordered after the
        // link.) Without this fsync a loss in that window would drop a
        // message already marked delivered; with it, success is reported
        // only once new/NAME is durable.
        let dfd = BytePath.open(base + Array("new".utf8), O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { _ = Glibc.fsync(dfd); Sys.close(dfd) }
    }
}
