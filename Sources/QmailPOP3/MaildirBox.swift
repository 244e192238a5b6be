// A Maildir as qmail-pop3d sees it: the messages of new/ and cur/ in order
// of modification time (to the nanosecond: one delivery process writes
// many messages a second, and "_10" sorts before "_9" by name), each with
// its size and unique name; changes
// (deletions, new/ -> cur/) are applied only at QUIT.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct MaildirMessage {
    /// "new/NAME" or "cur/NAME:2,FLAGS", relative to the Maildir.
    public var path: [UInt8]
    public var size: Int
    public var mtime: Int
    /// The nanoseconds of the modification time: the order within a second.
    public var mtimeNanoseconds = 0
    public var deleted = false

    /// The UIDL: the file name up to ':', the same in new/ and cur/ and
    /// whatever the flags.
    public var uniqueName: ArraySlice<UInt8> {
        let name = path[4...]
        return name[name.startIndex..<(name.firstIndex(of: Ascii.colon) ?? name.endIndex)]
    }
}

public struct QuitResult: Equatable {
    public var deleted = 0
    public var failed = 0
    public var bytesFreed = 0
}

public enum MaildirBox {
    /// Removes files in tmp/ not accessed for 36 hours (qmail's maildir_clean).
    public static func cleanTmp(now: Int = Sys.now()) {
        guard let names = try? Sys.listDirectory("tmp") else { return }
        for n in names {
            let p = "tmp/" + n
            if let st = try? Sys.stat(p), now > Int(st.st_atim.tv_sec) + 129600 { _ = unlink(p) }
        }
    }

    /// Lists new/ and cur/ (the current directory is the Maildir), oldest first.
    public static func scan() throws -> [MaildirMessage] {
        var out: [MaildirMessage] = []
        for sub in ["new", "cur"] {
            guard let dir = opendir(sub) else { throw SysError("opendir", path: sub) }
            defer { closedir(dir) }
            let dfd = dirfd(dir)
            while let ent = readdir(dir) {
                let name: [UInt8] = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                    let n = strnlen(raw.baseAddress!.assumingMemoryBound(to: CChar.self), raw.count)
                    return Array(raw[0..<n])
                }
                if name.first == Ascii.dot || name.isEmpty { continue }
                var st = stat()
                let ok = name.withUnsafeBufferPointer { nb -> Bool in
                    var cname = nb.map { CChar(bitPattern: $0) } + [0]
                    return fstatat(dfd, &cname, &st, 0) == 0
                }
                if !ok { continue }  // gone meanwhile (another session)
                if (st.st_mode & S_IFMT) != S_IFREG { continue }
                out.append(MaildirMessage(path: Array(sub.utf8) + [Ascii.slash] + name,
                                          size: Int(st.st_size), mtime: Int(st.st_mtim.tv_sec),
                                          mtimeNanoseconds: Int(st.st_mtim.tv_nsec)))
            }
        }
        out.sort { a, b in
            if a.mtime != b.mtime { return a.mtime < b.mtime }
            if a.mtimeNanoseconds != b.mtimeNanoseconds { return a.mtimeNanoseconds < b.mtimeNanoseconds }
            return a.uniqueName.lexicographicallyPrecedes(b.uniqueName)
        }
        return out
    }

    /// Applies a session's changes: unlinks deleted messages (finding them
    /// in cur/ when another session has moved them meanwhile), moves the
    /// rest of new/ to cur/NAME:2, and records freed space in maildirsize.
    public static func commit(_ messages: [MaildirMessage]) -> QuitResult {
        var r = QuitResult()
        var curNames: [[UInt8]]?
        for m in messages {
            if m.deleted {
                if unlink(m.path.string) == 0 {
                    r.deleted += 1
                    r.bytesFreed += m.size
                    continue
                }
                if errno != ENOENT { r.failed += 1; continue }
                // Moved by another session: look for the same unique name in cur/.
                if curNames == nil { curNames = (try? Sys.listDirectory("cur"))?.map { Array($0.utf8) } ?? [] }
                if let other = find(m.uniqueName, in: curNames!), unlink("cur/" + other.string) == 0 {
                    r.deleted += 1
                    r.bytesFreed += m.size
                }
            } else if m.path.hasPrefix(Array("new/".utf8)) {
                _ = rename(m.path.string, "cur/" + Array(m.path[4...]).string + ":2,")  // failure: bummer, as in qmail
            }
        }
        if r.deleted > 0 { updateQuota(bytes: r.bytesFreed, count: r.deleted) }
        return r
    }

    static func find(_ unique: ArraySlice<UInt8>, in names: [[UInt8]]) -> [UInt8]? {
        let u = Array(unique)
        return names.first { $0 == u || $0.hasPrefix(u + [Ascii.colon]) }
    }

    /// Where a message now is when its file name changed since the scan
    /// (moved to cur/, flags changed by another session), or nil.
    public static func locate(_ m: MaildirMessage) -> [UInt8]? {
        for sub in ["cur", "new"] {
            guard let names = try? Sys.listDirectory(sub) else { continue }
            if let n = find(m.uniqueName, in: names.map { Array($0.utf8) }) { return Array(sub.utf8) + [Ascii.slash] + n }
        }
        return nil
    }

    /// Maildir++: appends "-bytes -count" to maildirsize when the file exists.
    static func updateQuota(bytes: Int, count: Int) {
        let fd = Glibc.open("maildirsize", O_WRONLY | O_APPEND | O_CLOEXEC)
        if fd < 0 { return }
        defer { close(fd) }
        _ = try? Sys.writeAll(fd, "-\(bytes) -\(count)\n")
    }
}
