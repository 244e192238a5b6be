// fastforward: forwards the message qmail-local hands it according to a
// forwarding cdb (newaliases/setforward), as djb's fastforward 0.51 does.
//
// Runs from a .qmail file under qmail-local, as the owner of that file
// (normally the alias user). It trusts the cdb and the mailing-list files
// it names (world-readable files only); it takes RECIPIENT, or DEFAULT/EXT
// and HOST, SENDER and DTLINE from qmail-local's environment.
//
// The recipient address is tried as "user@host", "@host" and "user@"; the
// instructions found are expanded depth-first with a stack, each address
// or list used once (so loops inside the table end quietly). An address
// that is itself a target without an owner is expanded; everything else is
// forwarded in one qmail-queue run, with the list owner as envelope sender
// when the original recipient has one.
//
// The lookup keeps its bytes in one ByteArena and works on C strings from
// argv and the environment (see RawBytes.swift for why): a lookup costs
// about what djb's C program costs. Only programs and forwarding, which
// start processes anyway, convert to arrays.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public struct FastForwardOptions {
    public var deliver = true
    public var passThrough = false
    public var useDefault = false
    public init() {}
}

public final class FastForward {
    let o: FastForwardOptions
    let cdbName: UnsafePointer<CChar>
    let cdb: CdbReader
    /// Every byte string of the run: table data, list files, the recipient.
    var pool: ByteArena
    /// Keys being looked up (apart from pool: find appends to pool).
    var keys: ByteArena
    var sender: Span
    var forward = SpanList(capacity: 16)
    var todo = SpanList(capacity: 16)
    var done = SpanSet()

    init(_ o: FastForwardOptions, cdb name: UnsafePointer<CChar>) throws {
        self.o = o
        cdbName = name
        pool = try ByteArena(capacity: 16384)
        keys = try ByteArena(capacity: 1024)
        var e: Int32 = 0
        guard let f = CdbReader(path: name, errno: &e) else {
            pool.free(); keys.free(); forward.free(); todo.free(); done.free()
            throw ForwardFatal.temporary("unable to read \(String(cString: name)): \(Sys.strerror(e))")
        }
        cdb = f
        if let p = getenv("SENDER") {
            sender = try pool.append(UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), strlen(p))
        } else {
            sender = try pool.append("original envelope sender")
        }
    }

    deinit {
        pool.free()
        keys.free()
        forward.free()
        todo.free()
        done.free()
    }

    /// Looks up prefix + the bytes of `part` (a piece of pool), lowercased.
    func lookup(_ prefix: UInt8, _ part: Span) throws -> Span? {
        keys.truncate(0)
        try keys.append(prefix)
        try keys.reserve(part.count)
        for i in 0..<part.count { try keys.append(Ascii.lower(pool[part.start + i])) }
        do { return try cdb.find(keys.bytes(Span(start: 0, count: keys.count)), into: &pool) } catch let f as ForwardFatal {
            throw f
        } catch {
            throw ForwardFatal.temporary("unable to read \(String(cString: cdbName)): \(error)")
        }
    }

    /// The data for prefix+addr; with `wild`, also prefix+"@host" and prefix+"user@".
    func target(wild: Bool, _ prefix: UInt8, _ addr: Span) throws -> Span? {
        if let d = try lookup(prefix, addr) { return d }
        guard wild, let at = pool.lastIndex(of: Ascii.at, in: addr) else { return nil }
        if let d = try lookup(prefix, Span(start: at, count: addr.start + addr.count - at)) { return d }
        return try lookup(prefix, Span(start: addr.start, count: at + 1 - addr.start))
    }

    /// Each NUL-terminated instruction of `data`: programs run now, lists
    /// and addresses go on the stack.
    func doData(_ data: Span) throws {
        var i = data.start
        for j in data.start..<(data.start + data.count) where pool[j] == 0 {
            if j > i {
                let c = pool[i]
                let entry = Span(start: i, count: j - i)
                if c == UInt8(ascii: "|") || c == UInt8(ascii: "!") {
                    try runProgram(entry)
                } else if c == Ascii.dot || c == Ascii.slash || (c == UInt8(ascii: "&") && j - i < 900) {
                    todo.append(entry)
                }
            }
            i = j + 1
        }
    }

    /// A mailing list file (setmaillist's format): world-readable only.
    func doFile(_ name: Span) throws {
        keys.truncate(0)
        try keys.append(pool.base + name.start, name.count)
        try keys.append(0)
        let path = UnsafeRawPointer(keys.base).assumingMemoryBound(to: CChar.self)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ForwardFatal.temporary("unable to read \(String(cString: path)): \(Sys.strerror(errno))") }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw ForwardFatal.temporary("unable to stat \(String(cString: path)): \(Sys.strerror(errno))") }
        if (st.st_mode & 0o444) != 0o444 { throw ForwardFatal.temporary("\(String(cString: path)) is not world-readable") }
        let start = pool.count
        while true {
            try pool.reserve(16384)
            let n = read(fd, pool.tail, 16384)
            if n < 0 {
                if errno == EINTR { continue }
                throw ForwardFatal.temporary("unable to read \(String(cString: path)): \(Sys.strerror(errno))")
            }
            if n == 0 { break }
            _ = pool.commit(n)
        }
        var i = start
        for j in start..<pool.count where pool[j] == 0 {
            if j > i {
                let c = pool[i]
                if c == Ascii.dot || c == Ascii.slash || (c == UInt8(ascii: "&") && j - i < 900) {
                    todo.append(Span(start: i, count: j - i))
                }
            }
            i = j + 1
        }
    }

    /// An address reached through the table: expanded when it is a target
    /// without an owner, forwarded otherwise.
    func doRecipient(_ addr: Span) throws {
        if try target(wild: false, UInt8(ascii: "?"), addr) == nil,
           let data = try target(wild: false, Ascii.colon, addr) {
            try doData(data)
            return
        }
        forward.append(addr)
    }

    /// Returns false when the recipient has no instructions.
    func doOriginalRecipient(_ addr: Span) throws -> Bool {
        let bounceSender: StaticString = "#@[]"
        if sender.count > 0 && !pool.equal(sender, bounceSender.utf8Start, bounceSender.utf8CodeUnitCount),
           let owner = try target(wild: true, UInt8(ascii: "?"), addr) {
            sender = owner
        }
        guard let data = try target(wild: true, Ascii.colon, addr) else { return false }
        try doData(data)
        return true
    }

    /// Runs "|prog" with the message on its input, or "!prog" with
    /// UFLINE, RPLINE and DTLINE before the message (what preline does).
    func runProgram(_ entry: Span) throws {
        if !o.deliver {
            var line = try ByteArena(capacity: entry.count + 8)
            defer { line.free() }
            try line.append("run ")
            try FastForward.appendPrintable(pool.bytes(entry), to: &line)
            try line.append(Ascii.lf)
            _ = try? Sys.writeAll(2, line.base, line.count)
            return
        }
        let command = pathString(pool.array(Span(start: entry.start + 1, count: entry.count - 1)))
        let withHeaders = pool[entry.start] == UInt8(ascii: "!")
        try ProgramRunner.deliver(command, searchPath: true,
                                  prefix: withHeaders ? (env("UFLINE") ?? []) + (env("RPLINE") ?? []) + (env("DTLINE") ?? []) : nil,
                                  crashText: "child crashed in \(command)")
    }

    /// djb's -n output replaces control characters (and bytes past ASCII) with '_'.
    static func appendPrintable(_ b: UnsafeBufferPointer<UInt8>, to out: inout ByteArena) throws {
        for c in b { try out.append((c < 32 || c >= 128) ? UInt8(ascii: "_") : c) }
    }

    /// Handles the message for `recipient` (bytes of pool); returns the exit code.
    func run(recipient: Span) throws -> Int32 {
        let after: Int32 = o.passThrough ? 99 : 0
        _ = done.insert(recipient, in: pool)
        if try !doOriginalRecipient(recipient) {
            if o.passThrough { return 0 }
            // The everyday refusal (bounces to unknown aliases), written
            // without building an error value.
            let m: StaticString = "Sorry, no mailbox here by that name. (#5.1.1)\n"
            _ = try? Sys.writeAll(2, m.utf8Start, m.utf8CodeUnitCount)
            return QmailExit.permanent
        }
        while let x = todo.popLast() {
            if !done.insert(x, in: pool) { continue }
            if pool[x.start] == Ascii.dot || pool[x.start] == Ascii.slash {
                try doFile(x)
            } else {
                try doRecipient(Span(start: x.start + 1, count: x.count - 1))
            }
        }
        if forward.count == 0 {
            if !o.deliver {
                let m: StaticString = "no forwarding\n"
                _ = try? Sys.writeAll(2, m.utf8Start, m.utf8CodeUnitCount)
            }
            return after
        }
        if !o.deliver {
            var out = try ByteArena(capacity: 4096)
            defer { out.free() }
            try out.append("from <")
            try FastForward.appendPrintable(pool.bytes(sender), to: &out)
            try out.append(">\n")
            var k = forward.count
            while k > 0 {
                k -= 1
                try out.append("to <")
                try FastForward.appendPrintable(pool.bytes(forward[k]), to: &out)
                try out.append(">\n")
            }
            _ = try? Sys.writeAll(2, out.base, out.count)
            return after
        }
        var recipients: [[UInt8]] = []
        var k = forward.count
        while k > 0 {
            k -= 1
            recipients.append(pool.array(forward[k]))
        }
        let qp = try Forwarder.queue(dtline: env("DTLINE") ?? [], sender: pool.array(sender), recipients: recipients)
        Sys.warn("fastforward: qp \(qp)")
        return after
    }

    /// fastforward [ -nNpPdD ] data.cdb, with argv as the C runtime passes it.
    public static func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        return runMain("fastforward") {
            var o = FastForwardOptions()
            // djb's getopt: clustered flags; an argument starting with "--"
            // ends them and is dropped, and the first argument that is not
            // a flag (a lone "-" among them) ends them too.
            var i = 1
            var bad = false
            flags: while i < Int(argc), let a = argv[i] {
                if a[0] != 45 || a[1] == 0 { break }
                if a[1] == 45 { i += 1; break }
                var k = 1
                while a[k] != 0 {
                    switch UInt8(bitPattern: a[k]) {
                    case UInt8(ascii: "n"): o.deliver = false
                    case UInt8(ascii: "N"): o.deliver = true
                    case UInt8(ascii: "p"): o.passThrough = true
                    case UInt8(ascii: "P"): o.passThrough = false
                    case UInt8(ascii: "d"): o.useDefault = true
                    case UInt8(ascii: "D"): o.useDefault = false
                    default: bad = true; break flags
                    }
                    k += 1
                }
                i += 1
            }
            guard !bad, i < Int(argc), let name = argv[i] else {
                throw ForwardFatal.permanent("fastforward: usage: fastforward [ -nNpP ] data.cdb", bare: true)
            }
            let ff = try FastForward(o, cdb: name)
            let recipient: Span
            if o.useDefault {
                guard let local = getenv("DEFAULT") ?? getenv("EXT") else {
                    throw ForwardFatal.permanent("$DEFAULT or $EXT must be set")
                }
                guard let host = getenv("HOST") else { throw ForwardFatal.permanent("$HOST must be set") }
                let start = ff.pool.count
                try ff.pool.append(UnsafeRawPointer(local).assumingMemoryBound(to: UInt8.self), strlen(local))
                try ff.pool.append(Ascii.at)
                try ff.pool.append(UnsafeRawPointer(host).assumingMemoryBound(to: UInt8.self), strlen(host))
                recipient = Span(start: start, count: ff.pool.count - start)
            } else {
                guard let r = getenv("RECIPIENT") else { throw ForwardFatal.permanent("$RECIPIENT must be set") }
                recipient = try ff.pool.append(UnsafeRawPointer(r).assumingMemoryBound(to: UInt8.self), strlen(r))
            }
            return try ff.run(recipient: recipient)
        }
    }
}
