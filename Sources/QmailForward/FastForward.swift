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
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public struct FastForwardOptions {
    public var deliver = true
    public var passThrough = false
    public var useDefault = false
    public var cdb: String = ""
    public init() {}
}

public final class FastForward {
    let o: FastForwardOptions
    let cdb: CdbFile
    var sender: [UInt8]
    let dtline: [UInt8]
    var forward: [[UInt8]] = []
    var todo: [[UInt8]] = []
    var done = ByteStringSet()
    /// Where -n output goes.
    let log: ([UInt8]) -> Void

    init(_ o: FastForwardOptions, log: @escaping ([UInt8]) -> Void) throws {
        self.o = o
        self.log = log
        dtline = env("DTLINE") ?? []
        sender = env("SENDER") ?? Array("original envelope sender".utf8)
        do { cdb = try CdbFile(path: o.cdb) } catch let e as SysError {
            throw ForwardFatal(111, "unable to read \(o.cdb): \(Sys.strerror(e.errno))")
        }
    }

    func lookup(_ key: [UInt8]) throws -> [UInt8]? {
        do { return try cdb.find(key.map(Ascii.lower)) } catch {
            throw ForwardFatal(111, "unable to read \(o.cdb): \(error)")
        }
    }

    /// The data for prefix+addr; with `wild`, also prefix+"@host" and prefix+"user@".
    func target(wild: Bool, _ prefix: UInt8, _ addr: [UInt8]) throws -> [UInt8]? {
        if let d = try lookup([prefix] + addr) { return d }
        guard wild, let at = addr.lastIndex(of: Ascii.at) else { return nil }
        if let d = try lookup([prefix] + addr[at...]) { return d }
        return try lookup([prefix] + addr[...at])
    }

    /// Each NUL-terminated instruction of `data`: programs run now, lists
    /// and addresses go on the stack.
    func doData(_ data: [UInt8]) throws {
        var i = 0
        for j in 0..<data.count where data[j] == 0 {
            let entry = Array(data[i..<j])
            if let c = entry.first {
                if c == UInt8(ascii: "|") || c == UInt8(ascii: "!") {
                    try runProgram(entry)
                } else if c == Ascii.dot || c == Ascii.slash {
                    todo.append(entry)
                } else if c == UInt8(ascii: "&") && j - i < 900 {
                    todo.append(entry)
                }
            }
            i = j + 1
        }
    }

    func doFile(_ name: [UInt8]) throws {
        let path = pathString(name)
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch let e as SysError {
            throw ForwardFatal(111, "unable to read \(path): \(Sys.strerror(e.errno))")
        }
        defer { Sys.close(fd) }
        let st: stat
        do { st = try Sys.fstat(fd) } catch let e as SysError {
            throw ForwardFatal(111, "unable to stat \(path): \(Sys.strerror(e.errno))")
        }
        if (st.st_mode & 0o444) != 0o444 { throw ForwardFatal(111, "\(path) is not world-readable") }
        let list: [UInt8]
        do { list = try ByteReader(fd: fd, capacity: 16384).readAll() ?? [] } catch let e as SysError {
            throw ForwardFatal(111, "unable to read \(path): \(Sys.strerror(e.errno))")
        }
        var i = 0
        for j in 0..<list.count where list[j] == 0 {
            if j > i {
                let c = list[i]
                if c == Ascii.dot || c == Ascii.slash || (c == UInt8(ascii: "&") && j - i < 900) {
                    todo.append(Array(list[i..<j]))
                }
            }
            i = j + 1
        }
    }

    /// An address reached through the table: expanded when it is a target
    /// without an owner, forwarded otherwise.
    func doRecipient(_ addr: [UInt8]) throws {
        if try target(wild: false, UInt8(ascii: "?"), addr) == nil,
           let data = try target(wild: false, Ascii.colon, addr) {
            try doData(data)
            return
        }
        forward.append(addr)
    }

    /// Returns false when the recipient has no instructions.
    func doOriginalRecipient(_ addr: [UInt8]) throws -> Bool {
        if !sender.isEmpty && sender != Array("#@[]".utf8),
           let owner = try target(wild: true, UInt8(ascii: "?"), addr) {
            sender = owner
        }
        guard let data = try target(wild: true, Ascii.colon, addr) else { return false }
        try doData(data)
        return true
    }

    /// Runs "|prog" with the message on its input, or "!prog" with
    /// UFLINE, RPLINE and DTLINE before the message (what preline does).
    func runProgram(_ entry: [UInt8]) throws {
        if !o.deliver {
            log(Array("run ".utf8) + FastForward.printable(entry) + [Ascii.lf])
            return
        }
        let command = pathString(Array(entry[1...]))
        let withHeaders = entry[0] == UInt8(ascii: "!")
        try ProgramRunner.deliver(command, searchPath: true,
                                  prefix: withHeaders ? (env("UFLINE") ?? []) + (env("RPLINE") ?? []) + dtline : nil,
                                  crashText: "child crashed in \(command)")
    }

    /// djb's -n output replaces control characters (and bytes past ASCII) with '_'.
    static func printable(_ b: [UInt8]) -> [UInt8] {
        b.map { ($0 < 32 || $0 >= 128) ? UInt8(ascii: "_") : $0 }
    }

    /// Handles the message for `recipient`; returns the exit code.
    func run(recipient: [UInt8]) throws -> Int32 {
        let after: Int32 = o.passThrough ? 99 : 0
        _ = done.insert(recipient)
        if try !doOriginalRecipient(recipient) {
            if o.passThrough { return 0 }
            throw ForwardFatal(100, "Sorry, no mailbox here by that name. (#5.1.1)", bare: true)
        }
        while let x = todo.popLast() {
            if !done.insert(x) { continue }
            if x.isEmpty { continue }
            if x[0] == Ascii.dot || x[0] == Ascii.slash {
                try doFile(x)
            } else {
                try doRecipient(Array(x[1...]))
            }
        }
        if forward.isEmpty {
            if !o.deliver { log(Array("no forwarding\n".utf8)) }
            return after
        }
        if !o.deliver {
            var s = Array("from <".utf8) + FastForward.printable(sender) + Array(">\n".utf8)
            for a in forward.reversed() { s += Array("to <".utf8) + FastForward.printable(a) + Array(">\n".utf8) }
            log(s)
            return after
        }
        let qp = try Forwarder.queue(dtline: dtline, sender: sender, recipients: forward.reversed())
        Sys.warn("fastforward: qp \(qp)")
        return after
    }

    public static func main(_ argv: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        return runMain("fastforward") {
            guard let (flags, rest) = getopt(argv, "nNpPdD"), let fn = rest.first else {
                throw ForwardFatal(100, "fastforward: usage: fastforward [ -nNpP ] data.cdb", bare: true)
            }
            var o = FastForwardOptions()
            for f in flags {
                switch f {
                case UInt8(ascii: "n"): o.deliver = false
                case UInt8(ascii: "N"): o.deliver = true
                case UInt8(ascii: "p"): o.passThrough = true
                case UInt8(ascii: "P"): o.passThrough = false
                case UInt8(ascii: "d"): o.useDefault = true
                default: o.useDefault = false
                }
            }
            o.cdb = fn
            let ff = try FastForward(o) { _ = try? Sys.writeAll(2, $0) }
            let recipient: [UInt8]
            if o.useDefault {
                guard let local = env("DEFAULT") ?? env("EXT") else {
                    throw ForwardFatal(100, "$DEFAULT or $EXT must be set")
                }
                guard let host = env("HOST") else { throw ForwardFatal(100, "$HOST must be set") }
                recipient = local + [Ascii.at] + host
            } else {
                guard let r = env("RECIPIENT") else { throw ForwardFatal(100, "$RECIPIENT must be set") }
                recipient = r
            }
            return try ff.run(recipient: recipient)
        }
    }
}

extension Sys {
    /// Writes text to standard error as is (no newline added).
    static func warnRaw(_ s: String) {
        _ = try? Sys.writeAll(2, Array(s.utf8))
    }
}

/// A set of byte strings without Swift's Hasher and Set machinery (which
/// cost page faults and a random seed at every exec): open addressing on
/// the cdb hash, doubling at half full.
struct ByteStringSet {
    private var items: [[UInt8]] = []
    private var table = [Int32](repeating: -1, count: 64)

    /// Adds `s`; false when it was there already.
    mutating func insert(_ s: [UInt8]) -> Bool {
        var mask = table.count - 1
        var i = Int(CdbHash.hash(s)) & mask
        while table[i] >= 0 {
            if items[Int(table[i])] == s { return false }
            i = (i + 1) & mask
        }
        table[i] = Int32(items.count)
        items.append(s)
        if items.count * 2 > table.count {
            table = [Int32](repeating: -1, count: table.count * 2)
            mask = table.count - 1
            for (n, it) in items.enumerated() {
                var j = Int(CdbHash.hash(it)) & mask
                while table[j] >= 0 { j = (j + 1) & mask }
                table[j] = Int32(n)
            }
        }
        return true
    }

    func contains(_ s: [UInt8]) -> Bool {
        let mask = table.count - 1
        var i = Int(CdbHash.hash(s)) & mask
        while table[i] >= 0 {
            if items[Int(table[i])] == s { return true }
            i = (i + 1) & mask
        }
        return false
    }
}
