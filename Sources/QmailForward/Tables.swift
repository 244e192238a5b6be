// The table tools around fastforward, with djb's formats:
//   setforward    "target: command, command;" text -> forwarding cdb
//   printforward  forwarding cdb -> setforward text
//   setmaillist   one address or list file per line -> binary mailing list
//   printmaillist binary mailing list -> setmaillist text
//   newinclude    sendmail :include: file -> LIST.bin
// A binary mailing list is a series of NUL-terminated entries: "&address"
// or a list file name starting with '.' or '/'.
// They run as whoever maintains the tables and trust their input only to
// be a table; every output goes through a temporary file, fsync and rename.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum SetForward {
    /// Parses setforward's text into cdb records, in file order.
    public static func records(_ input: [UInt8], _ add: ([UInt8], [UInt8]) throws -> Void) throws {
        var target: [UInt8] = []
        var command: [UInt8] = []
        var instr: [UInt8] = []
        var haveTarget = false
        var i = 0
        let n = input.count
        func key(_ prefix: UInt8) -> [UInt8] { [prefix] + target.map(Ascii.lower) }
        while i < n {
            var c = input[i]
            i += 1
            if c == Ascii.hash {
                while i < n && input[i] != Ascii.lf { i += 1 }
                continue
            }
            if c == Ascii.space || c == Ascii.lf || c == Ascii.tab { continue }
            if c == Ascii.colon {
                if haveTarget { throw ForwardFatal(100, "double colons are not permitted") }
                haveTarget = true
                continue
            }
            if c == 44 || c == 59 { // ',' ';'
                if !haveTarget { throw ForwardFatal(100, "commas are not permitted before colons") }
                if let first = command.first {
                    switch first {
                    case UInt8(ascii: "?"):
                        try add(key(UInt8(ascii: "?")), Array(command[1...]))
                    case UInt8(ascii: "|"), UInt8(ascii: "!"), Ascii.dot, Ascii.slash:
                        instr += command
                        instr.append(0)
                    default:
                        if command.count > 800 { throw ForwardFatal(100, "addresses over 800 bytes are not permitted") }
                        if first != UInt8(ascii: "&") { instr.append(UInt8(ascii: "&")) }
                        instr += command
                        instr.append(0)
                    }
                }
                command.removeAll(keepingCapacity: true)
                if c == 59 {
                    if !instr.isEmpty { try add(key(Ascii.colon), instr) }
                    target.removeAll(keepingCapacity: true)
                    instr.removeAll(keepingCapacity: true)
                    haveTarget = false
                }
                continue
            }
            if c == 92 {
                if i >= n { break }
                c = input[i]
                i += 1
            }
            if c == 0 { throw ForwardFatal(100, "NUL bytes are not permitted") }
            if haveTarget { command.append(c) } else { target.append(c) }
        }
        if haveTarget || !target.isEmpty { throw ForwardFatal(100, "final instruction must end with semicolon") }
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("setforward") {
            guard argv.count >= 3 else { throw ForwardFatal(100, "setforward: usage: setforward data.cdb data.tmp", bare: true) }
            let input: [UInt8]
            do { input = try ByteReader(fd: 0, capacity: 65536).readAll() ?? [] } catch {
                throw ForwardFatal(111, "unable to read input: \(error)")
            }
            try writeCdb(argv[1], argv[2]) { add in try records(input, add) }
            return 0
        }
    }

    /// Writes a cdb through `tmp`; the old `cdb` stays when anything fails.
    static func writeCdb(_ cdb: String, _ tmp: String,
                         _ body: (_ add: ([UInt8], [UInt8]) throws -> Void) throws -> Void) throws {
        do {
            try CdbWriter.create(path: cdb, tmpPath: tmp, mode: 0o644, records: body)
        } catch let f as ForwardFatal {
            throw f
        } catch let e as SysError where e.op == "rename" {
            throw ForwardFatal(111, "unable to move \(tmp) to \(cdb): \(Sys.strerror(e.errno))")
        } catch let e as SysError where e.op == "open" {
            throw ForwardFatal(111, "unable to create \(tmp): \(Sys.strerror(e.errno))")
        } catch {
            throw ForwardFatal(111, "unable to write to \(tmp): \(error)")
        }
    }
}

/// printsafe of djb's printforward: a backslash before anything
/// setforward would not read back as itself.
func printSafe(_ b: ArraySlice<UInt8>, into out: inout [UInt8]) {
    for c in b {
        if c <= 32 || c >= 128 || c == 44 || c == 58 || c == 59 || c == 92 || c == 35 { out.append(92) }
        out.append(c)
    }
}

public enum PrintForward {
    /// setforward text for a forwarding cdb's bytes.
    public static func render(_ db: UnsafeRawBufferPointer) throws -> [UInt8] {
        let bad = ForwardFatal(100, "bad database format")
        func u32(_ p: Int) throws -> Int {
            guard p + 4 <= db.count else { throw bad }
            return Int(db[p]) | Int(db[p + 1]) << 8 | Int(db[p + 2]) << 16 | Int(db[p + 3]) << 24
        }
        guard db.count >= 2048 else { throw bad }
        let eod = try u32(0)
        var out: [UInt8] = []
        var pos = 2048
        while pos < eod {
            if eod - pos < 8 { throw bad }
            let klen = try u32(pos), dlen = try u32(pos + 4)
            pos += 8
            if eod - pos < klen { throw bad }
            let kstart = pos
            pos += klen
            if eod - pos < dlen { throw bad }
            let dstart = pos
            pos += dlen
            if pos > db.count { throw bad }
            if klen == 0 { throw bad }
            let key = Array(db[kstart..<(kstart + klen)])
            let data = Array(db[dstart..<(dstart + dlen)])
            if key[0] == UInt8(ascii: "?") {
                printSafe(key[1...], into: &out)
                out += Array(": ?".utf8)
                printSafe(data[...], into: &out)
                out += Array(";\n".utf8)
            } else if key[0] == Ascii.colon {
                printSafe(key[1...], into: &out)
                out += Array(":\n".utf8)
                var i = 0
                var j = 0
                while j < data.count {
                    if data[j] == 0 {
                        let c = i < j ? data[i] : 0
                        let ok = c == Ascii.dot || c == Ascii.slash || c == UInt8(ascii: "|") || c == UInt8(ascii: "!")
                            || (c == UInt8(ascii: "&") && j - i < 900)
                        if !ok { throw bad }
                        out += Array(", ".utf8)
                        printSafe(data[i..<j], into: &out)
                        out.append(Ascii.lf)
                        i = j + 1
                    }
                    j += 1
                }
                if i != j { throw bad }
                out += Array(";\n".utf8)
            } else {
                throw bad
            }
        }
        return out
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("printforward") {
            let input: [UInt8]
            do { input = try ByteReader(fd: 0, capacity: 65536).readAll() ?? [] } catch {
                throw ForwardFatal(111, "unable to read input: \(error)")
            }
            let out = try input.withUnsafeBytes { try render($0) }
            do { try Sys.writeAll(1, out) } catch { throw ForwardFatal(111, "unable to write output: \(error)") }
            return 0
        }
    }
}

public enum MailingList {
    /// setmaillist's lines -> binary entries.
    public static func set(_ input: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        let n = input.count
        while start < n {
            var end = start
            while end < n && input[end] != Ascii.lf { end += 1 }
            var e = end
            while e > start && (input[e - 1] == Ascii.space || input[e - 1] == Ascii.tab) { e -= 1 }
            let line = input[start..<e]
            start = end + 1
            if line.contains(0) { throw ForwardFatal(111, "NUL in input") }
            guard let first = line.first, first != Ascii.hash else { continue }
            if first == Ascii.dot || first == Ascii.slash {
                out += line
            } else {
                if line.count > 800 { throw ForwardFatal(111, "addresses must be under 800 bytes") }
                if first != UInt8(ascii: "&") { out.append(UInt8(ascii: "&")) }
                out += line
            }
            out.append(0)
        }
        return out
    }

    /// Binary entries -> setmaillist lines.
    public static func print(_ input: [UInt8]) throws -> [UInt8] {
        let bad = ForwardFatal(100, "bad mailing list format")
        var out: [UInt8] = []
        var i = 0
        let n = input.count
        while i < n {
            guard let z = input[i...].firstIndex(of: 0) else { throw bad }
            let entry = input[i..<z] // without its NUL
            i = z + 1
            guard let first = entry.first else { throw bad }
            if entry.contains(Ascii.lf) { throw bad }
            // (djb's trailing-space check looks at the NUL, so it never fires.)
            if first == Ascii.dot || first == Ascii.slash {
                out += entry
            } else if first == UInt8(ascii: "&") {
                if entry.count + 1 > 900 { throw bad }
                out += entry
            } else {
                throw bad
            }
            out.append(Ascii.lf)
        }
        return out
    }

    static func readStdin() throws -> [UInt8] {
        do { return try ByteReader(fd: 0, capacity: 65536).readAll() ?? [] } catch {
            throw ForwardFatal(111, "unable to read input: \(error)")
        }
    }

    /// Writes `bytes` to `bin` through `tmp` (fsync, rename), world-readable.
    static func writeList(_ bin: String, _ tmp: String, _ bytes: [UInt8]) throws {
        let fd: Int32
        do { fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644) } catch let e as SysError {
            throw ForwardFatal(111, "unable to create \(tmp): \(Sys.strerror(e.errno))")
        }
        do {
            try Sys.writeAll(fd, bytes)
            try Sys.fsync(fd)
        } catch let e as SysError {
            Sys.close(fd)
            throw ForwardFatal(111, "unable to write to \(tmp): \(Sys.strerror(e.errno))")
        }
        if close(fd) != 0 { throw ForwardFatal(111, "unable to write to \(tmp): \(Sys.strerror(errno))") }
        if rename(tmp, bin) != 0 {
            throw ForwardFatal(111, "unable to move \(tmp) to \(bin): \(Sys.strerror(errno))")
        }
    }

    public static func setMain(_ argv: [String]) -> Int32 {
        runMain("setmaillist") {
            umask(0o033)
            guard argv.count >= 3 else { throw ForwardFatal(100, "setmaillist: usage: setmaillist list.bin list.tmp", bare: true) }
            let input = try readStdin()
            try writeList(argv[1], argv[2], try set(input))
            return 0
        }
    }

    public static func printMain(_ argv: [String]) -> Int32 {
        runMain("printmaillist") {
            let out = try print(try readStdin())
            do { try Sys.writeAll(1, out) } catch { throw ForwardFatal(111, "unable to write output: \(error)") }
            return 0
        }
    }
}

public enum NewInclude {
    /// The binary list for a sendmail :include: file's text.
    public static func compile(_ text: [UInt8], _ q: Qualifier) throws -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        let n = text.count
        var number = 0
        while start < n {
            var end = start
            while end < n && text[end] != Ascii.lf { end += 1 }
            let line = Array(text[start..<min(end + 1, n)])
            start = end + 1
            number += 1
            if line[0] == Ascii.hash { continue }
            guard let toks = Token822.parse(line) else { throw parseError(line, number) }
            do {
                var items: [AddressItem] = []
                let failed = AddressList.walk(toks, includes: true, into: &items)
                for item in items {
                    let text = toks.text(of: item)
                    switch item.isInclude {
                    case true:
                        let name = text
                        if name.isEmpty { throw ForwardFatal(111, "empty :include: filenames not permitted") }
                        if name.contains(Ascii.lf) { throw ForwardFatal(111, "newlines not permitted in :include: filenames") }
                        if name.contains(0) { throw ForwardFatal(111, "NUL not permitted in :include: filenames") }
                        if name[0] != Ascii.dot && name[0] != Ascii.slash { out += [Ascii.dot, Ascii.slash] }
                        out += name
                        out.append(0)
                    case false:
                        let hasAt = item.hasAt
                        if text.isEmpty { continue }
                        if !hasAt && text[0] == Ascii.slash {
                            throw ForwardFatal(111, "file delivery \(DotForward.cString(text)) not supported")
                        }
                        if !hasAt && text[0] == UInt8(ascii: "|") {
                            throw ForwardFatal(111, "program delivery \(DotForward.cString(text)) not supported")
                        }
                        let a = q.qualify(text, hasAt: hasAt)
                        if a.contains(Ascii.lf) { throw ForwardFatal(111, "newlines not permitted in recipient addresses") }
                        if a.contains(0) { throw ForwardFatal(111, "NUL not permitted in recipient addresses") }
                        if a.count > 800 { throw ForwardFatal(111, "addresses must be under 800 bytes") }
                        if a.last == Ascii.space || a.last == Ascii.tab {
                            throw ForwardFatal(111, "spaces and tabs not permitted at ends of addresses")
                        }
                        out.append(UInt8(ascii: "&"))
                        out += a
                        out.append(0)
                    }
                }
                if failed { throw ForwardFatal.parseError }
            } catch let f as ForwardFatal {
                if f.message == ForwardFatal.parseError.message { throw parseError(line, number) }
                throw ForwardFatal(f.code, "line \(number): \(f.message)")
            }
        }
        return out
    }

    static func parseError(_ line: [UInt8], _ number: Int) -> ForwardFatal {
        var l = DotForward.cBytes(line)
        while l.last == Ascii.lf { l.removeLast() }
        return ForwardFatal(111, "line \(number): unable to parse this line: \(l.string)")
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("newinclude") {
            umask(0o033)
            var q = try Qualifier.load(controlDirectory: QmailHome.current().control)
            if let v = env("QMAILDEFAULTDOMAIN") { q.defaultDomain = v }
            if let v = env("QMAILDEFAULTHOST") { q.defaultHost = v }
            if let v = env("QMAILPLUSDOMAIN") { q.plusDomain = v }
            guard argv.count >= 2 else { throw ForwardFatal(100, "newinclude: usage: newinclude list", bare: true) }
            let list = argv[1]
            let text: [UInt8]
            do {
                guard let t = try FileIO.read(list, limit: 1 << 30) else {
                    throw ForwardFatal(111, "unable to read \(list): \(Sys.strerror(ENOENT))")
                }
                text = t
            } catch let e as SysError {
                throw ForwardFatal(111, "unable to read \(list): \(Sys.strerror(e.errno))")
            }
            let bytes = try compile(text, q)
            try MailingList.writeList(list + ".bin", list + ".tmp", bytes)
            return 0
        }
    }
}
