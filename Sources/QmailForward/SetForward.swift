// setforward: compiles setforward's "target: command, command;" text into a
// forwarding cdb (djb's layout, see Newaliases.swift). Runs as whoever
// maintains the table; trusts its input only to be a table. The cdb goes
// through the temporary file named on the command line, fsync and rename.
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
                if haveTarget { throw ForwardFatal.permanent("double colons are not permitted") }
                haveTarget = true
                continue
            }
            if c == 44 || c == 59 { // ',' ';'
                if !haveTarget { throw ForwardFatal.permanent("commas are not permitted before colons") }
                if let first = command.first {
                    switch first {
                    case UInt8(ascii: "?"):
                        try add(key(UInt8(ascii: "?")), Array(command[1...]))
                    case UInt8(ascii: "|"), UInt8(ascii: "!"), Ascii.dot, Ascii.slash:
                        instr += command
                        instr.append(0)
                    default:
                        if command.count > 800 { throw ForwardFatal.permanent("addresses over 800 bytes are not permitted") }
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
            if c == 0 { throw ForwardFatal.permanent("NUL bytes are not permitted") }
            if haveTarget { command.append(c) } else { target.append(c) }
        }
        if haveTarget || !target.isEmpty { throw ForwardFatal.permanent("final instruction must end with semicolon") }
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("setforward") {
            guard argv.count >= 3 else { throw ForwardFatal.permanent("setforward: usage: setforward data.cdb data.tmp", bare: true) }
            let input: [UInt8]
            do { input = try ByteReader(fd: 0, capacity: 65536).readAll() ?? [] } catch {
                throw ForwardFatal.temporary("unable to read input: \(error)")
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
            throw ForwardFatal.temporary("unable to move \(tmp) to \(cdb): \(Sys.strerror(e.errno))")
        } catch let e as SysError where e.op == "open" {
            throw ForwardFatal.temporary("unable to create \(tmp): \(Sys.strerror(e.errno))")
        } catch {
            throw ForwardFatal.temporary("unable to write to \(tmp): \(error)")
        }
    }
}
