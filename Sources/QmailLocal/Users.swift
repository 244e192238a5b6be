// qmail-users(5): users/assign -> users/cdb (qmail-newu). The cdb keys and
// values are qmail-newu's, byte for byte (listed in QmailCore's UsersCdb,
// which does the lookups), so a users/cdb written by either is read by the
// other.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Who handles a local part: qmail-getpw's six fields.
public struct UserAssignment: Equatable {
    public var user: [UInt8]
    public var uid: [UInt8]
    public var gid: [UInt8]
    public var home: [UInt8]
    public var dash: [UInt8]
    public var ext: [UInt8]

    public init(user: [UInt8], uid: [UInt8], gid: [UInt8], home: [UInt8], dash: [UInt8], ext: [UInt8]) {
        self.user = user; self.uid = uid; self.gid = gid; self.home = home; self.dash = dash; self.ext = ext
    }

    /// The six fields, each NUL-terminated (qmail-getpw's output).
    public var nulTerminated: [UInt8] {
        var out: [UInt8] = []
        for f in [user, uid, gid, home, dash, ext] { out += f; out.append(0) }
        return out
    }
}

public enum UsersAssign {
    public struct FormatError: Error, CustomStringConvertible {
        public let line: Int
        public var description: String { "bad format in users/assign (line \(line))" }
    }

    /// The cdb records qmail-newu writes for an assign file, in order,
    /// ending with the wildcard-character record. Reading stops at a line
    /// starting with '.'; a line without newline before it, a NUL, a line
    /// without ':' or with fewer than six ':' after the address, is an error.
    public static func records(_ data: [UInt8]) throws -> [(key: [UInt8], data: [UInt8])] {
        var out: [(key: [UInt8], data: [UInt8])] = []
        var wild: [UInt8] = []
        var pos = 0
        var lineNo = 0
        while true {
            lineNo += 1
            let nl = data[pos...].firstIndex(of: Ascii.lf)
            let line = Array(data[pos..<(nl ?? data.count)])
            if line.first == Ascii.dot { break }
            guard let end = nl else { throw FormatError(line: lineNo) }
            pos = end + 1
            if line.contains(0) { throw FormatError(line: lineNo) }
            guard let colon = line.firstIndex(of: Ascii.colon), colon > 0 else { throw FormatError(line: lineNo) }
            var key: [UInt8] = [UInt8(ascii: "!")] + line[1..<colon].map(Ascii.lower)
            if line[0] == Ascii.plus {
                if colon >= 2 {
                    let c = line[colon - 1]
                    if !wild.contains(c) { wild.append(c) }
                }
            } else {
                key.append(0)
            }
            // Six fields after the address, each ended by ':'; the sixth ':'
            // and anything after it are dropped.
            var value: [UInt8] = []
            var colons = 0
            for c in line[(colon + 1)...] {
                if c == Ascii.colon {
                    colons += 1
                    if colons == 6 { break }
                    value.append(0)
                } else {
                    value.append(c)
                }
            }
            if colons < 6 { throw FormatError(line: lineNo) }
            out.append((key, value))
        }
        out.append(([], wild))
        return out
    }

    /// Looks `local` up in users/cdb as qmail-lspawn does (UsersCdb).
    /// Nil when nothing matches or the entry does not have six fields.
    public static func lookup(_ cdb: CdbReader, local: [UInt8]) throws -> UserAssignment? {
        guard let d = try UsersCdb.lookup(cdb, local: local) else { return nil }
        let f = d.dropLast().split(byte: 0)
        guard f.count == 6 else { return nil }
        return UserAssignment(user: f[0], uid: f[1], gid: f[2], home: f[3], dash: f[4], ext: f[5])
    }
}

extension UsersAssign {
    /// qmail-newu's main: every failure is temporary (exit 111) with
    /// qmail-newu's messages; the old users/cdb stays in place.
    public static func newuMain(home: QmailHome) -> Int32 {
        let fatal = "qmail-newu: fatal: "
        let dir = home.users
        let data: [UInt8]
        do {
            guard let d = try FileIO.read(dir + "/assign", limit: 1 << 30) else {
                say(2, fatal + "unable to open users/assign\n"); return QmailExit.temporary
            }
            data = d
        } catch { say(2, fatal + "unable to read users/assign\n"); return QmailExit.temporary }
        let recs: [(key: [UInt8], data: [UInt8])]
        do { recs = try records(data) } catch {
            say(2, fatal + "bad format in users/assign\n"); return QmailExit.temporary
        }
        let old = umask(0o033)
        defer { umask(old) }
        do {
            try CdbWriter.create(path: dir + "/cdb", tmpPath: dir + "/cdb.tmp", mode: 0o644) { add in
                var progress = Progress("qmail-newu", unit: "records", total: recs.count, size: recs.count, large: 20000)
                for (i, r) in recs.enumerated() { try add(r.key, r.data); progress.step(i + 1) }
                progress.finish(recs.count)
            }
        } catch let e as SysError where e.op == "rename" {
            say(2, fatal + "unable to move users/cdb.tmp to users/cdb\n"); return QmailExit.temporary
        } catch let e as SysError where e.op == "open" {
            say(2, fatal + "unable to open users/cdb.tmp\n"); return QmailExit.temporary
        } catch {
            say(2, fatal + "unable to write users/cdb.tmp\n"); return QmailExit.temporary
        }
        return 0
    }
}
