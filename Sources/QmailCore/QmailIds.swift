// The uids and gids of qmail's accounts for one home, the run-time
// counterpart of qmail's compiled-in auto_uids. qmail-setup writes them to
// HOME/ids, a root-owned file in a multi-user installation:
//
//   mode=multi            (or "single": every component runs as one user)
//   alias=7790            one line per account: name=uid
//   qmaild=7791 ...
//   gid.qmail=2107        groups: gid.name=gid
//   gid.nofiles=2108
//
// In single-user mode every account maps to the one user that owns the home.
// A home without the file is one that qmail's own binaries were replaced in
// (qmail-setup never ran): its ids are qmail's accounts, looked up by name.
#if canImport(Glibc)
import Glibc
#endif

public struct QmailIds: Sendable, Equatable {
    public static let users = ["alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"]
    public static let groups = ["qmail", "nofiles"]

    public var singleUser: Bool
    public var uid: [String: uid_t]
    public var gid: [String: gid_t]

    public init(singleUser: Bool, uid: [String: uid_t], gid: [String: gid_t]) {
        self.singleUser = singleUser
        self.uid = uid
        self.gid = gid
    }

    /// Every account mapped to one uid/gid.
    public static func single(uid u: uid_t, gid g: gid_t) -> QmailIds {
        var us: [String: uid_t] = [:]
        for n in users { us[n] = u }
        var gs: [String: gid_t] = [:]
        for n in groups { gs[n] = g }
        return QmailIds(singleUser: true, uid: us, gid: gs)
    }

    public func uid(_ name: String) -> uid_t? { uid[name] }
    public func gid(_ name: String) -> gid_t? { gid[name] }

    public func render() -> String {
        var s = "mode=\(singleUser ? "single" : "multi")\n"
        for n in Self.users { if let v = uid[n] { s += "\(n)=\(v)\n" } }
        for n in Self.groups { if let v = gid[n] { s += "gid.\(n)=\(v)\n" } }
        return s
    }

    public static func parse(_ data: [UInt8]) -> QmailIds? {
        var ids = QmailIds(singleUser: false, uid: [:], gid: [:])
        var sawMode = false
        for line in Control.parseList(data) {
            guard let eq = line.firstIndex(of: Ascii.equals) else { return nil }
            let key = Array(line[0..<eq]).string
            let value = Array(line[(eq + 1)...])
            if key == "mode" {
                sawMode = true
                ids.singleUser = value.string == "single"
                continue
            }
            guard let n = Decimal.parse(value), n <= Int(UInt32.max) else { return nil }
            if key.hasPrefix("gid.") {
                ids.gid[String(key.dropFirst(4))] = gid_t(n)
            } else {
                ids.uid[key] = uid_t(n)
            }
        }
        return sawMode ? ids : nil
    }

    /// Reads HOME/ids. Without the file the home is an existing qmail
    /// installation: the ids are qmail's accounts by name, as qmail's
    /// compiled-in auto_uids were; a missing account or a damaged file is a
    /// temporary failure, never a guess that would send mail elsewhere.
    public static func load(home: QmailHome) throws -> QmailIds {
        guard let data = try FileIO.read(home.path + "/ids") else { return try accounts(home: home) }
        guard let ids = parse(data) else { throw MailFailure.temporary("unable to parse \(home.path)/ids") }
        return ids
    }

    /// qmail's users and groups from /etc/passwd and /etc/group, read as
    /// files: qmail's accounts are local ones (qmail's own build read them
    /// the same way for auto_uids), and the fully static programs that load
    /// the ids (qmail-queue) cannot use NSS, which getpwnam needs.
    static func accounts(home: QmailHome) throws -> QmailIds {
        func missing(_ what: String) -> MailFailure {
            .temporary("\(home.path)/ids is missing and so is qmail's \(what): run qmail-setup")
        }
        func table(_ path: String) throws -> [String: UInt32] {
            guard let data = try FileIO.read(path) else { throw MailFailure.temporary("unable to read \(path)") }
            return idsByName(data)
        }
        let passwd = try table("/etc/passwd"), group = try table("/etc/group")
        var ids = QmailIds(singleUser: false, uid: [:], gid: [:])
        for name in users {
            guard let uid = passwd[name] else { throw missing("user \(name)") }
            ids.uid[name] = uid_t(uid)
        }
        for name in groups {
            guard let gid = group[name] else { throw missing("group \(name)") }
            ids.gid[name] = gid_t(gid)
        }
        return ids
    }

    /// name -> third field of passwd(5)/group(5) lines (`name:x:ID:...`);
    /// the first line for a name wins, as getpwnam's files lookup does.
    static func idsByName(_ data: [UInt8]) -> [String: UInt32] {
        var out: [String: UInt32] = [:]
        for line in data.split(separator: 10) {
            let f = line.split(separator: UInt8(ascii: ":"), maxSplits: 3, omittingEmptySubsequences: false)
            guard f.count >= 3, !f[0].isEmpty, let id = Decimal.parse(Array(f[2])), id <= Int(UInt32.max) else { continue }
            let name = String(decoding: f[0], as: UTF8.self)
            if out[name] == nil { out[name] = UInt32(id) }
        }
        return out
    }
}
