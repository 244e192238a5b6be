// vmoveuser's stream: a mailbox directory (its Maildir with folders, flags
// in the names of cur/'s files, maildirsize, .qmail files, vacation files)
// as text lines, each file's bytes after its line:
//     swift-qmail-mailbox 1 user@domain host
//     d MODE PATH                      a directory (before what it holds)
//     f MODE MTIME SIZE PATH           then SIZE bytes
//     e FILES BYTES SHA1               the end: counts and the SHA-1 of
//                                      every file's bytes in stream order
// MODE is octal, PATH relative with "/" between names. The receiver checks
// every path (no "..", no absolute path, nothing twice), the counts and the
// digest, and answers "ok FILES BYTES SHA1" only when all is on its disk
// (each file fsync'd, each directory too). The contents of a Maildir's tmp/
// are never sent: deliveries that did not finish.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

enum MailboxArchive {
    static let magic = "swift-qmail-mailbox 1"

    /// What was sent or received: the end line's figures.
    struct Summary: Equatable {
        var files = 0
        var bytes = 0
        var digest = ""
        /// Entries left out (symbolic links, devices, names with a newline).
        var skipped = 0

        var reply: String { "ok \(files) \(bytes) \(digest)\n" }
    }

    static func octal(_ m: mode_t) -> String { String(m & 0o7777, radix: 8) }

    /// A Maildir's tmp/ (a directory beside new/ and cur/).
    static func isMaildirTmp(_ parent: String, _ name: String) -> Bool {
        name == "tmp" && Sys.isDirectory(parent + "/new") && Sys.isDirectory(parent + "/cur")
    }

    // MARK: sending

    /// Writes the tree under `root` to `out`.
    static func write(root: String, header: String, to out: ByteWriter) throws -> Summary {
        var sum = Summary()
        var sha = SHA1()
        try out.put("\(magic) \(header)\n")
        func walk(_ rel: String) throws {
            let dir = rel.isEmpty ? root : root + "/" + rel
            for name in try Sys.listDirectory(dir).sorted() {
                let r = rel.isEmpty ? name : rel + "/" + name
                let path = root + "/" + r
                let st = try Sys.lstat(path)
                if name.utf8.contains(Ascii.lf) { sum.skipped += 1; continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    try out.put("d \(octal(st.st_mode)) \(r)\n")
                    if !isMaildirTmp(dir, name) { try walk(r) }
                case S_IFREG:
                    let size = Int(st.st_size)
                    try out.put("f \(octal(st.st_mode)) \(st.st_mtim.tv_sec) \(size) \(r)\n")
                    let fd = try Sys.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                    defer { Sys.close(fd) }
                    let whole = try ByteReader(fd: fd, capacity: 65536).copy(count: size) { chunk in
                        try out.put(chunk)
                        sha.update(Array(chunk))
                    }
                    // the mailbox is marked and out of delivery's reach: nothing may change it now
                    guard whole else { throw AdminError.system("\(path) shrank while it was copied") }
                    sum.files += 1
                    sum.bytes += size
                default:
                    sum.skipped += 1
                }
            }
        }
        try walk("")
        sum.digest = MD5.hex(digest: sha.finish()).string
        try out.put("e \(sum.files) \(sum.bytes) \(sum.digest)\n")
        try out.flush()
        return sum
    }

    // MARK: receiving

    static func broken(_ why: String) -> AdminError { .system("the mailbox stream is broken: \(why)") }

    /// A relative path of the stream, checked: names joined by "/", none
    /// empty, "." or "..".
    static func checkedPath(_ raw: [UInt8]) throws -> String {
        let parts = raw.split(separator: Ascii.slash, omittingEmptySubsequences: false)
        guard !raw.isEmpty, !raw.contains(0),
              parts.allSatisfy({ !$0.isEmpty && $0.elementsEqual([Ascii.dot]) == false && $0.elementsEqual([Ascii.dot, Ascii.dot]) == false })
        else { throw broken("bad path \(raw.string)") }
        return raw.string
    }

    /// Reads a stream from `input` into the new, empty directory `root`
    /// (whose files and directories get `owner`); returns its figures
    /// once every byte is on disk and the end line agrees.
    static func read(from input: ByteReader, into root: String, header: String, owner: (uid_t, gid_t)) throws -> Summary {
        guard let (first, _) = try input.line(limit: 4096), first == Array("\(magic) \(header)\n".utf8) else {
            throw broken("it does not start with \"\(magic) \(header)\"")
        }
        var sum = Summary()
        var sha = SHA1()
        var dirs = [root]
        while true {
            guard let (raw, overflow) = try input.line(limit: 8192), !overflow, raw.last == Ascii.lf else {
                throw broken("it ends early, after \(sum.files) files")
            }
            let line = Array(raw.dropLast())
            // the path is the last field and may hold spaces
            let fields = ["d": 3, "f": 5, "e": 4]
            let kind = line.prefix { $0 != Ascii.space }.string
            let want = fields[kind] ?? 1
            let f = line.split(separator: Ascii.space, maxSplits: want - 1, omittingEmptySubsequences: false).map(Array.init)
            switch (kind, f.count == want) {
            case ("d", true):
                let path = root + "/" + (try checkedPath(f[2]))
                guard let mode = Int(f[1].string, radix: 8) else { throw broken("bad line \(line.string)") }
                try FileStore.makeDirectory(path, mode: mode_t(mode & 0o7777), owner: owner)
                dirs.append(path)
            case ("f", true):
                let path = root + "/" + (try checkedPath(f[4]))
                guard let mode = Int(f[1].string, radix: 8), let mtime = Decimal.parse(f[2]), let size = Decimal.parse(f[3]) else {
                    throw broken("bad line \(line.string)")
                }
                // O_EXCL|O_NOFOLLOW: a path given twice, or anything there already, is an error
                let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                defer { Sys.close(fd) }
                let whole = try input.copy(count: size) { chunk in
                    try Sys.writeAll(fd, chunk.baseAddress!, chunk.count)
                    sha.update(Array(chunk))
                }
                guard whole else { throw broken("it ends inside \(path)") }
                if geteuid() == 0, fchown(fd, owner.0, owner.1) != 0 { throw SysError("chown", path: path) }
                if fchmod(fd, mode_t(mode & 0o7777)) != 0 { throw SysError("chmod", path: path) }
                var times = [timespec(tv_sec: mtime, tv_nsec: 0), timespec(tv_sec: mtime, tv_nsec: 0)]
                _ = futimens(fd, &times)
                try Sys.fsync(fd)
                sum.files += 1
                sum.bytes += size
            case ("e", true):
                sum.digest = MD5.hex(digest: sha.finish()).string
                guard Decimal.parse(f[1]) == sum.files, Decimal.parse(f[2]) == sum.bytes, f[3].string == sum.digest else {
                    throw broken("it announced \(f[1].string) files, \(f[2].string) bytes, SHA-1 \(f[3].string); "
                                 + "\(sum.files) files, \(sum.bytes) bytes, SHA-1 \(sum.digest) arrived")
                }
                for d in dirs { try Sys.fsyncDirectory(d) }
                return sum
            default:
                throw broken("bad line \(line.string)")
            }
        }
    }

    /// Moves what `from` holds into `to` where `to` has nothing of that
    /// name; a message (a file of new/ or cur/) is left out when `to`
    /// holds it already under either, whatever its flags now. Used when
    /// a copy arrives again for a mailbox that is live here (a rerun after
    /// a receiver ended between its switch and its answer).
    static func merge(_ from: String, into to: String) throws {
        guard let st = try? Sys.lstat(to) else { try Sys.rename(from, to); return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return }
        let parent = FileIO.directoryOf(to)
        let leaf = String(to.split(separator: "/").last ?? "")
        let inMaildir = leaf == "new" || leaf == "cur"
        // the messages `to`'s Maildir holds, by their unique part (before ':')
        let held: Set<Substring> = inMaildir
            ? Set(["new", "cur"].flatMap { ((try? Sys.listDirectory(parent + "/" + $0)) ?? []).map(uniquePart) }) : []
        for name in try Sys.listDirectory(from).sorted() {
            let src = from + "/" + name
            let isFile = (try Sys.lstat(src).st_mode & S_IFMT) == S_IFREG
            if inMaildir && isFile {
                if !held.contains(uniquePart(name)) { try Sys.rename(src, to + "/" + name) }
                continue
            }
            try merge(src, into: to + "/" + name)
        }
        try Sys.fsyncDirectory(to)
    }

    static func uniquePart(_ name: String) -> Substring { name.split(separator: ":", maxSplits: 1).first ?? Substring(name) }
}
