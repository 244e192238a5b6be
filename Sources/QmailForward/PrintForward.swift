// printforward: prints a forwarding cdb (from its standard input) as
// setforward text, escaping what setforward would not read back as itself.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

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
        let bad = ForwardFatal.permanent("bad database format")
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
                throw ForwardFatal.temporary("unable to read input: \(error)")
            }
            let out = try input.withUnsafeBytes { try render($0) }
            do { try Sys.writeAll(1, out) } catch { throw ForwardFatal.temporary("unable to write output: \(error)") }
            return 0
        }
    }
}
