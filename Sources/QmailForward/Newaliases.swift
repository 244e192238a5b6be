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

    public init(qualifier: Qualifier) { q = qualifier }

    mutating func reset() {
        target.removeAll(keepingCapacity: true)
        fullTarget.removeAll(keepingCapacity: true)
        instr.removeAll(keepingCapacity: true)
    }

    mutating func gotInclude(_ name: [UInt8]) throws {
        if name.isEmpty { throw ForwardFatal(111, "empty :include: filenames not permitted") }
        if name.contains(0) { throw ForwardFatal(111, "NUL not permitted in :include: filenames") }
        if name[0] != Ascii.dot && name[0] != Ascii.slash { instr += [Ascii.dot, Ascii.slash] }
        instr += name
        instr += Array(".bin".utf8)
        instr.append(0)
    }

    /// One address, in right-to-left order: the previous one (to its right)
    /// becomes an instruction and this one the candidate target.
    mutating func gotAddress(_ text: [UInt8], hasAt: Bool) throws {
        if text.isEmpty { throw ForwardFatal(111, "empty recipient addresses not permitted") }
        if !hasAt && text[0] == Ascii.slash {
            throw ForwardFatal(111, "file delivery \(text.string) not supported")
        }
        if !hasAt && text[0] == UInt8(ascii: "|") {
            if text.contains(0) { throw ForwardFatal(111, "NUL not permitted in program names") }
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
        target = text
        if !hasAt { target.append(Ascii.at) }
        fullTarget = target
        if fullTarget.last == Ascii.at { fullTarget += q.defaultHost }
        q.finishDomain(&fullTarget)
        if fullTarget.count > 800 { throw ForwardFatal(100, "addresses over 800 bytes are not permitted") }
        if fullTarget.contains(0) { throw ForwardFatal(111, "NUL not permitted in recipient addresses") }
    }

    /// Parses one logical line (continuations joined) and returns its cdb
    /// records; [] for a line with nothing in it.
    public mutating func records(forLine line: [UInt8]) throws -> [(key: [UInt8], data: [UInt8])] {
        reset()
        guard let toks = Token822.parse(line) else { throw ForwardFatal.parseError }
        let (items, failed) = AddressList.walk(toks, includes: true)
        for item in items {
            switch item {
            case .include(let name): try gotInclude(name)
            case .address(let text, let hasAt): try gotAddress(text, hasAt: hasAt)
            }
        }
        if failed { throw ForwardFatal.parseError }
        if instr.isEmpty {
            if !target.isEmpty { throw ForwardFatal.parseError }
            return []
        }
        if target.isEmpty { throw ForwardFatal.parseError }
        var out: [(key: [UInt8], data: [UInt8])] = []
        if target.hasPrefix(Array("owner-".utf8)) {
            out.append(([UInt8(ascii: "?")] + target[6...].map(Ascii.lower), fullTarget))
        }
        out.append(([Ascii.colon] + target.map(Ascii.lower), instr))
        return out
    }
}

/// Splits an aliases file into logical lines with the line number each
/// starts on. The last line is dropped when it has no newline (djb's rule).
struct AliasLines {
    private let reader: ByteReader
    private var pending: [UInt8]? = nil
    private var pendingNumber = 0
    private var lineNumber = 0
    private var done = false

    init(fd: Int32) {
        reader = ByteReader(fd: fd, capacity: 65536)
    }

    /// The next logical line that is not a comment, with its first line number.
    mutating func next() throws -> (line: [UInt8], number: Int)? {
        while !done {
            let got = try reader.line()
            var raw: [UInt8]? = nil
            if let g = got, g.bytes.last == Ascii.lf {
                raw = g.bytes
                lineNumber += 1
            } else {
                done = true // end of file, or a last line without newline (ignored)
            }
            if let r = raw {
                if r.count == 1 { continue } // an empty line, even inside a continuation
                if r[0] == Ascii.space || r[0] == Ascii.tab {
                    if pending != nil { pending! += r } else { pending = r; pendingNumber = lineNumber }
                    continue
                }
            }
            let finished = pending
            let number = pendingNumber
            pending = raw
            pendingNumber = lineNumber
            if let f = finished, !f.isEmpty, f[0] != Ascii.hash { return (f, number) }
        }
        return nil
    }
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
        let fd: Int32
        do { fd = try Sys.open(o.aliases, O_RDONLY) } catch {
            throw ForwardFatal(111, "unable to read \(o.aliases): \(error)")
        }
        defer { Sys.close(fd) }
        var lines = AliasLines(fd: fd)
        var builder = AliasEntryBuilder(qualifier: q)
        do {
            try CdbWriter.create(path: o.cdb, tmpPath: o.tmp, mode: 0o644) { add in
                while true {
                    let next: (line: [UInt8], number: Int)?
                    do { next = try lines.next() } catch {
                        throw ForwardFatal(111, "unable to read \(o.aliases): \(error)")
                    }
                    guard let (line, number) = next else { break }
                    do {
                        for r in try builder.records(forLine: line) { try add(r.key, r.data) }
                    } catch let f as ForwardFatal {
                        throw located(f, o.aliases, number, line)
                    }
                }
            }
        } catch let f as ForwardFatal {
            throw f
        } catch let e as SysError {
            throw ForwardFatal(111, "unable to write to \(o.tmp): \(e)")
        } catch {
            throw ForwardFatal(111, "unable to write to \(o.tmp): \(error)")
        }
    }

    /// Adds the file name and line number to a refusal; a syntax error
    /// also shows the line, as djb's does (at most 200 bytes of it).
    static func located(_ f: ForwardFatal, _ file: String, _ number: Int, _ line: [UInt8]) -> ForwardFatal {
        if f.message == ForwardFatal.parseError.message {
            var shown = line
            while shown.last == Ascii.lf { shown.removeLast() }
            var suffix = ""
            if shown.count > 200 { shown = Array(shown[0..<200]); suffix = "..." }
            shown = shown.map { $0 == Ascii.lf ? Ascii.lf : ($0 < 32 && $0 != Ascii.tab ? UInt8(ascii: "?") : $0) }
            return ForwardFatal(111, "\(file) line \(number): unable to parse this line: \(shown.string)\(suffix)")
        }
        return ForwardFatal(f.code, "\(file) line \(number): \(f.message)")
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
