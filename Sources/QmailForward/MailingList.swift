// setmaillist and printmaillist: binary mailing lists, a series of
// NUL-terminated entries, "&address" or a list file name starting with
// '.' or '/'. setmaillist writes through a temporary file, fsync, rename.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

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
            if line.contains(0) { throw ForwardFatal.temporary("NUL in input") }
            guard let first = line.first, first != Ascii.hash else { continue }
            if first == Ascii.dot || first == Ascii.slash {
                out += line
            } else {
                if line.count > 800 { throw ForwardFatal.temporary("addresses must be under 800 bytes") }
                if first != UInt8(ascii: "&") { out.append(UInt8(ascii: "&")) }
                out += line
            }
            out.append(0)
        }
        return out
    }

    /// Binary entries -> setmaillist lines.
    public static func print(_ input: [UInt8]) throws -> [UInt8] {
        let bad = ForwardFatal.permanent("bad mailing list format")
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
            throw ForwardFatal.temporary("unable to read input: \(error)")
        }
    }

    /// Writes `bytes` to `bin` through `tmp` (fsync, rename), world-readable.
    static func writeList(_ bin: String, _ tmp: String, _ bytes: [UInt8]) throws {
        let fd: Int32
        do { fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644) } catch let e as SysError {
            throw ForwardFatal.temporary("unable to create \(tmp): \(Sys.strerror(e.errno))")
        }
        do {
            try Sys.writeAll(fd, bytes)
            try Sys.fsync(fd)
        } catch let e as SysError {
            Sys.close(fd)
            throw ForwardFatal.temporary("unable to write to \(tmp): \(Sys.strerror(e.errno))")
        }
        if close(fd) != 0 { throw ForwardFatal.temporary("unable to write to \(tmp): \(Sys.strerror(errno))") }
        if rename(tmp, bin) != 0 {
            throw ForwardFatal.temporary("unable to move \(tmp) to \(bin): \(Sys.strerror(errno))")
        }
    }

    public static func setMain(_ argv: [String]) -> Int32 {
        runMain("setmaillist") {
            umask(0o033)
            guard argv.count >= 3 else { throw ForwardFatal.permanent("setmaillist: usage: setmaillist list.bin list.tmp", bare: true) }
            let input = try readStdin()
            try writeList(argv[1], argv[2], try set(input))
            return 0
        }
    }

    public static func printMain(_ argv: [String]) -> Int32 {
        runMain("printmaillist") {
            let out = try print(try readStdin())
            do { try Sys.writeAll(1, out) } catch { throw ForwardFatal.temporary("unable to write output: \(error)") }
            return 0
        }
    }
}
