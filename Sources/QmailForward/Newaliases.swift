// newaliases: compiles a sendmail-style aliases file into the forwarding
// cdb fastforward reads, with djb's syntax and djb's key layout:
//   ":" + lowercased target  ->  instructions, each NUL-terminated:
//        "&address" (forward), "!program" (run with preline),
//        "./file.bin" or "/file.bin" (an :include: list)
//   "?" + lowercased list    ->  "owner-list@host" (envelope sender), for
//                                each alias named owner-list.
// A bare target "name" is stored as "name@" (any host); "@host" and
// "user@host" are stored as written.
//
// Lines: a line starting with space or tab continues the previous one, an
// empty line is skipped (even inside a continuation), a line starting with
// '#' (and its continuations) is a comment, and a last line without a
// newline is ignored, all as djb's newaliases does.
//
// The cdb is written to a temporary file, fsync'd and renamed over the old
// one, so a refused file leaves the old cdb in place. Runs as whoever
// maintains /etc/aliases (normally root); it trusts its input file only to
// be an aliases file.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct AliasEntryBuilder {
    let q: Qualifier
    var target: [UInt8] = []
    var fullTarget: [UInt8] = []
    var instr: [UInt8] = []
    // Scratch space reused from line to line.
    var items: [AddressItem] = []
    var text: [UInt8] = []
    var key: [UInt8] = []

    public init(qualifier: Qualifier) { q = qualifier }

    mutating func reset() {
        target.removeAll(keepingCapacity: true)
        fullTarget.removeAll(keepingCapacity: true)
        instr.removeAll(keepingCapacity: true)
    }

    mutating func gotInclude(_ name: [UInt8]) throws {
        if name.isEmpty { throw ForwardFatal.temporary("empty :include: filenames not permitted") }
        if name.contains(0) { throw ForwardFatal.temporary("NUL not permitted in :include: filenames") }
        if name[0] != Ascii.dot && name[0] != Ascii.slash { instr += [Ascii.dot, Ascii.slash] }
        instr += name
        instr += Array(".bin".utf8)
        instr.append(0)
    }

    /// One address, in right-to-left order: the previous one (to its right)
    /// becomes an instruction and this one the candidate target.
    mutating func gotAddress(_ text: [UInt8], hasAt: Bool) throws {
        if text.isEmpty { throw ForwardFatal.temporary("empty recipient addresses not permitted") }
        if !hasAt && text[0] == Ascii.slash {
            throw ForwardFatal.temporary("file delivery \(text.string) not supported")
        }
        if !hasAt && text[0] == UInt8(ascii: "|") {
            if text.contains(0) { throw ForwardFatal.temporary("NUL not permitted in program names") }
            instr.append(UInt8(ascii: "!"))
            instr += text[1...]
            instr.append(0)
            return
        }
        if !target.isEmpty {
            instr.append(UInt8(ascii: "&"))
            instr += fullTarget
            instr.append(0)
        }
        // Copied into buffers kept from line to line (no allocation), from
        // their memory (appending an array would retain and release it).
        target.removeAll(keepingCapacity: true)
        text.withUnsafeBufferPointer { target.append(contentsOf: $0) }
        if !hasAt { target.append(Ascii.at) }
        fullTarget.removeAll(keepingCapacity: true)
        target.withUnsafeBufferPointer { fullTarget.append(contentsOf: $0) }
        if fullTarget.last == Ascii.at { fullTarget += q.defaultHost }
        q.finishDomain(&fullTarget)
        if fullTarget.count > 800 { throw ForwardFatal.permanent("addresses over 800 bytes are not permitted") }
        if fullTarget.contains(0) { throw ForwardFatal.temporary("NUL not permitted in recipient addresses") }
    }

    /// Parses one logical line (continuations joined) and returns its cdb
    /// records; [] for a line with nothing in it.
    public mutating func records(forLine line: [UInt8]) throws -> [(key: [UInt8], data: [UInt8])] {
        var out: [(key: [UInt8], data: [UInt8])] = []
        var toks = Tokens()
        try line.withUnsafeBufferPointer { l in try compile(l, &toks) { out.append(($0, $1)) } }
        return out
    }

    /// Parses one logical line and hands its records (owner first) to `add`.
    mutating func compile(_ line: UnsafeBufferPointer<UInt8>, _ toks: inout Tokens,
                          _ add: ([UInt8], [UInt8]) throws -> Void) throws {
        reset()
        guard Token822Scanner.parse(line, into: &toks) else { throw ForwardFatal.parseError }
        // The scratch arrays are moved out of self while in use: handing
        // self.text to a mutating method of self would make Swift retain
        // and check it on every call (a tenth of newaliases' time).
        var items = self.items, text = self.text, key = self.key
        self.items = []; self.text = []; self.key = []
        defer { self.items = items; self.text = text; self.key = key }
        let failed = AddressList.walk(toks, includes: true, into: &items)
        for item in items {
            toks.text(of: item, into: &text)
            if item.isInclude { try gotInclude(text) } else { try gotAddress(text, hasAt: item.hasAt) }
        }
        if failed { throw ForwardFatal.parseError }
        if instr.isEmpty {
            if !target.isEmpty { throw ForwardFatal.parseError }
            return
        }
        if target.isEmpty { throw ForwardFatal.parseError }
        if target.count >= 6 && target[0..<6].elementsEqual("owner-".utf8) {
            AliasEntryBuilder.lowered(&key, UInt8(ascii: "?"), target[6...])
            try add(key, fullTarget)
        }
        AliasEntryBuilder.lowered(&key, Ascii.colon, target[...])
        try add(key, instr)
    }

    /// key = prefix + lowercased bytes, reusing key's storage.
    static func lowered(_ key: inout [UInt8], _ prefix: UInt8, _ bytes: ArraySlice<UInt8>) {
        key.removeAll(keepingCapacity: true)
        key.append(prefix)
        key.append(contentsOf: bytes)
        key.withUnsafeMutableBufferPointer { k in
            for i in 1..<k.count { k[i] = Ascii.lower(k[i]) }
        }
    }
}

/// Splits an aliases file (in memory) into logical lines: a line starting
/// with space or tab continues the one before, a line holding only a
/// newline is skipped, a logical line starting with '#' is a comment, and a
/// last line without a newline is ignored (djb's rules). A logical line is
/// returned as one range of the file; skipped empty lines inside it are
/// plain newlines, which the tokenizer ignores anyway.
struct AliasLines {
    let text: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private var lineNumber = 0

    init(text: UnsafeBufferPointer<UInt8>) { self.text = text }

    /// The end of the physical line starting at `p` (just past its newline), or nil when it has none.
    @inline(__always) private func lineEnd(_ p: Int) -> Int? {
        guard p < text.count, let base = text.baseAddress,
              let nl = memchr(base + p, 10, text.count - p) else { return nil }
        return base.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1
    }

    /// The next logical line that is not a comment, with its first line number.
    mutating func next() -> (line: UnsafeBufferPointer<UInt8>, number: Int)? {
        while let end = lineEnd(pos) {
            let start = pos
            lineNumber += 1
            let number = lineNumber
            pos = end
            if end - start == 1 { continue } // an empty line
            // Swallow continuation lines and empty lines, up to a line that starts anew.
            var last = end
            while let e = lineEnd(pos) {
                let c = text[pos]
                if c == Ascii.lf { lineNumber += 1; pos = e; continue }
                if c != Ascii.space && c != Ascii.tab { break }
                lineNumber += 1
                pos = e
                last = e
            }
            if text[start] == Ascii.hash { continue }
            return (UnsafeBufferPointer(rebasing: text[start..<last]), number)
        }
        return nil
    }
}

/// A file's bytes in memory that is mapped populated in one go (reading a
/// 6 MB aliases file into a Swift array costs a page fault per 4 KiB).
final class WholeFile {
    private(set) var base: UnsafeMutableRawPointer? = nil
    private var capacity = 0
    private(set) var count = 0

    init(path: String) throws {
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY) } catch let e as SysError {
            throw ForwardFatal.temporary("unable to read \(path): \(Sys.strerror(e.errno))")
        }
        defer { Sys.close(fd) }
        do {
            try grow(Int(try Sys.fstat(fd).st_size) + 4096)
            while true {
                if count == capacity { try grow(capacity * 2) } // the file grew meanwhile
                let n = try Sys.read(fd, base! + count, capacity - count)
                if n == 0 { break }
                count += n
            }
        } catch let e as SysError {
            throw ForwardFatal.temporary("unable to read \(path): \(Sys.strerror(e.errno))")
        }
    }

    private func grow(_ size: Int) throws {
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
              p != MAP_FAILED else { throw SysError("mmap") }
        if let old = base {
            p.copyMemory(from: old, byteCount: count)
            munmap(old, capacity)
        }
        base = p
        capacity = size
    }

    var bytes: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: base?.assumingMemoryBound(to: UInt8.self), count: count)
    }

    deinit { if let base { munmap(base, capacity) } }
}

public struct NewaliasesOptions {
    public var aliases: String = "/etc/aliases"
    public var controlDirectory: String
    public init(controlDirectory: String) { self.controlDirectory = controlDirectory }
    public var cdb: String { aliases + ".cdb" }
    public var tmp: String { aliases + ".tmp" }
}

public enum Newaliases {
    /// Compiles the aliases file; throws ForwardFatal with djb's exit code.
    public static func run(_ o: NewaliasesOptions) throws {
        umask(0o033)
        let q = try Qualifier.load(controlDirectory: o.controlDirectory)
        let file = try WholeFile(path: o.aliases)
        var lines = AliasLines(text: file.bytes)
        var builder = AliasEntryBuilder(qualifier: q)
        var toks = Tokens()
        do {
            try CdbWriter.create(path: o.cdb, tmpPath: o.tmp, mode: 0o644) { add in
                var progress = Progress("newaliases", unit: "lines", total: nil, size: file.bytes.count, large: 1 << 20)
                var last = 0
                while let (line, number) = lines.next() {
                    progress.step(number)
                    last = number
                    do {
                        try builder.compile(line, &toks, add)
                    } catch let f as ForwardFatal {
                        throw located(f, o.aliases, number, Array(line))
                    }
                }
                progress.finish(last)
            }
        } catch let f as ForwardFatal {
            throw f
        } catch let e as SysError where e.op == "open" {
            throw ForwardFatal.temporary("unable to create \(o.tmp): \(Sys.strerror(e.errno))")
        } catch let e as SysError where e.op == "rename" {
            throw ForwardFatal.temporary("unable to move \(o.tmp) to \(o.cdb): \(Sys.strerror(e.errno))")
        } catch let e as SysError {
            throw ForwardFatal.temporary("unable to write to \(o.tmp): \(Sys.strerror(e.errno))")
        } catch {
            throw ForwardFatal.temporary("unable to write to \(o.tmp): \(error)")
        }
    }

    /// Adds the file name and line number to a refusal; a syntax error
    /// also shows the line, as djb's does (at most 200 bytes of it).
    static func located(_ f: ForwardFatal, _ file: String, _ number: Int, _ line: [UInt8]) -> ForwardFatal {
        if f.message == ForwardFatal.parseError.message {
            var shown: [UInt8] = []
            for c in line where !(c == Ascii.lf && shown.last == Ascii.lf) { shown.append(c) }
            while shown.last == Ascii.lf { shown.removeLast() }
            var suffix = ""
            if shown.count > 200 { shown = Array(shown[0..<200]); suffix = "..." }
            shown = shown.map { $0 == Ascii.lf ? Ascii.lf : ($0 < 32 && $0 != Ascii.tab ? UInt8(ascii: "?") : $0) }
            return ForwardFatal.temporary("\(file) line \(number): unable to parse this line: \(shown.string)\(suffix)")
        }
        return f.with(message: "\(file) line \(number): \(f.message)")
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("newaliases") {
            var o = NewaliasesOptions(controlDirectory: QmailHome.current().control)
            var i = 1
            while i < argv.count {
                if argv[i] == "-f", i + 1 < argv.count {
                    o.aliases = argv[i + 1]
                    i += 2
                    continue
                }
                if argv[i].hasPrefix("-f") && argv[i].count > 2 {
                    o.aliases = String(argv[i].dropFirst(2))
                }
                i += 1 // djb's newaliases ignores its arguments; so do we, except -f
            }
            try run(o)
            return 0
        }
    }
}
