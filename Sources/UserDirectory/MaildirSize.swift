// Maildir++ quota accounting (the maildirsize file):
//   line 1: the quota, "NNNS,MMMC"
//   then:   "bytes count" lines, each a change (negative for removals)
// The usage is the sum of the lines. Writers append one line with one
// write(2) on an O_APPEND descriptor, so concurrent deliveries and a POP3
// server deleting mail never lose each other's lines. The file is rebuilt
// from the Maildir when it is missing, grows past 5120 bytes, carries
// another quota, or says "over quota" while older than 15 minutes.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum MaildirSize {
    public static let fileName = "maildirsize"
    public static let maxFileSize = 5120
    public static let staleAfter = 15 * 60

    public struct Usage: Equatable, Sendable {
        public var bytes: Int
        public var count: Int
        public init(bytes: Int, count: Int) { self.bytes = bytes; self.count = count }
    }

    struct Parsed { var quotaLine: [UInt8]; var usage: Usage; var fileSize: Int; var mtime: Int }

    static func read(_ maildir: String) throws -> Parsed? {
        let path = maildir + "/" + fileName
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch let e as SysError where e.errno == ENOENT { return nil }
        defer { Sys.close(fd) }
        let st = try Sys.fstat(fd)
        let r = ByteReader(fd: fd, capacity: 8192)
        // A file far past the rebuild size is rebuilt without being summed.
        guard let data = try r.readAll(limit: 1 << 20) else {
            return Parsed(quotaLine: [], usage: Usage(bytes: 0, count: 0), fileSize: Int(st.st_size), mtime: Int(st.st_mtim.tv_sec))
        }
        var lines = data.split(separator: Ascii.lf, omittingEmptySubsequences: false).map(Array.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        let first = lines.first ?? []
        var usage = Usage(bytes: 0, count: 0)
        for l in lines.dropFirst() {
            let f = l.split(separator: Ascii.space, omittingEmptySubsequences: true).map(Array.init)
            guard f.count >= 1, let b = signed(f[0]) else { continue }
            usage.bytes += b
            if f.count >= 2, let c = signed(f[1]) { usage.count += c }
        }
        return Parsed(quotaLine: first, usage: usage, fileSize: data.count, mtime: Int(st.st_mtim.tv_sec))
    }

    static func signed(_ b: [UInt8]) -> Int? {
        if b.first == Ascii.minus { return Decimal.parse(b.dropFirst()).map { -$0 } }
        return Decimal.parse(b)
    }

    /// Sums the Maildir's messages: new/ and cur/ of the INBOX and of every
    /// Maildir++ folder (".Name"). The size comes from ",S=nnn" in the file
    /// name when present, else from stat.
    public static func scan(_ maildir: String) throws -> Usage {
        var usage = Usage(bytes: 0, count: 0)
        var dirs = [maildir]
        for e in (try? Sys.listDirectory(maildir)) ?? [] where e.hasPrefix(".") && e != "." && e != ".." {
            if Sys.isDirectory(maildir + "/" + e + "/cur") { dirs.append(maildir + "/" + e) }
        }
        for d in dirs {
            for sub in ["new", "cur"] {
                let path = d + "/" + sub
                let names: [String]
                do { names = try Sys.listDirectory(path) } catch let e as SysError where e.errno == ENOENT { continue }
                for n in names where !n.hasPrefix(".") {
                    if let s = sizeFromName(n) {
                        usage.bytes += s
                    } else if let st = try? Sys.stat(path + "/" + n) {
                        usage.bytes += Int(st.st_size)
                    } else {
                        continue // removed meanwhile
                    }
                    usage.count += 1
                }
            }
        }
        return usage
    }

    /// The nnn of ",S=nnn" in a Maildir++ file name.
    public static func sizeFromName(_ name: String) -> Int? {
        let b = Array(name.utf8)
        var i = 0
        while i + 3 <= b.count {
            if b[i] == 44 && b[i + 1] == 83 && b[i + 2] == Ascii.equals { // ",S="
                var j = i + 3
                var v = 0
                var any = false
                while j < b.count, Ascii.isDigit(b[j]), v < Int.max / 10 - 9 { v = v * 10 + Int(b[j] - 48); j += 1; any = true }
                return any ? v : nil
            }
            i += 1
        }
        return nil
    }

    /// Rewrites maildirsize from a scan of the Maildir, through tmp/ and
    /// rename. Returns the usage.
    @discardableResult
    public static func rebuild(_ maildir: String, quota: Quota) throws -> Usage {
        let usage = try scan(maildir)
        let body = "\(quota.maildirsizeLine)\n\(usage.bytes) \(usage.count)\n"
        let tmp = "\(maildir)/tmp/\(Sys.now()).\(getpid()).maildirsize"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL, 0o600)
        do {
            try Sys.writeAll(fd, body)
            try Sys.fsync(fd)
            Sys.close(fd)
            try Sys.rename(tmp, maildir + "/" + fileName)
        } catch {
            Sys.close(fd)
            _ = unlink(tmp)
            throw error
        }
        return usage
    }

    /// The current usage under `quota`, rebuilding the file when the rules
    /// above say so.
    public static func usage(_ maildir: String, quota: Quota) throws -> Usage {
        let want = Array(quota.maildirsizeLine.utf8)
        guard let p = try read(maildir), p.quotaLine == want, p.fileSize <= maxFileSize else {
            return try rebuild(maildir, quota: quota)
        }
        return p.usage
    }

    /// Whether a message of `size` bytes fits. An "over quota" answer from
    /// a file older than 15 minutes is checked again after a rebuild (mail
    /// removed by a client that does not keep maildirsize).
    public static func fits(_ maildir: String, quota: Quota, size: Int) throws -> Bool {
        if quota.isUnlimited { return true }
        let u = try usage(maildir, quota: quota)
        if within(u, quota, size) { return true }
        if let p = try read(maildir), Sys.now() - p.mtime > staleAfter {
            return within(try rebuild(maildir, quota: quota), quota, size)
        }
        return false
    }

    static func within(_ u: Usage, _ q: Quota, _ size: Int) -> Bool {
        if let b = q.bytes, u.bytes + size > b { return false }
        if let c = q.count, u.count + 1 > c { return false }
        return true
    }

    /// Records a change (a delivery: +size, +1; a deletion: -size, -1) when
    /// the Maildir keeps a maildirsize file. For POP3 servers too.
    public static func record(_ maildir: String, bytes: Int, count: Int) throws {
        let fd: Int32
        do { fd = try Sys.open(maildir + "/" + fileName, O_WRONLY | O_APPEND) } catch let e as SysError where e.errno == ENOENT { return }
        defer { Sys.close(fd) }
        try Sys.writeAll(fd, "\(bytes) \(count)\n")
    }
}
