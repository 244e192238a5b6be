// The file backend's records. The text files are the authority and keep
// vpopmail's formats, so a vpopmail tree reads as is; each is compiled into
// a cdb that the hot paths (checkpassword, vdelivermail) read with one or
// two probes however many domains and users there are.
//
//   HOME/users/vdomains      domain:realdomain:dir:uid:gid   (aliases map to
//   HOME/users/vdomains.cdb  "domain" -> "realdomain\0dir\0uid\0gid"  a real domain)
//   DIR/vpasswd              name:hash:uidflags:gidflags:gecos:dir:quota[:clear]
//   DIR/valias               alias:target   (one line per target)
//   DIR/vmailhost            name:host   (cluster home hosts; vpasswd keeps
//                            vpopmail's format, so they live beside it)
//   DIR/vmoving              name:host   (mailboxes being moved to host by
//                            vmoveuser: every lookup answers "try later")
//   DIR/vpasswd.cdb          "=name" -> the vpasswd line [+ NUL host
//                            [+ NUL moving-to host]] (host empty when only
//                            the move is set), "@alias" -> targets, LF-separated
// vdomains may carry a sixth field, the domain's default home host.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// A hosted domain (or an alias of one).
public struct VDomain: Sendable, Equatable {
    public var name: [UInt8]
    /// The domain this one is an alias of (itself for a real domain).
    public var real: [UInt8]
    public var dir: String
    public var uid: uid_t
    public var gid: gid_t
    /// The cluster host its mailboxes live on unless a mailbox names its
    /// own (qmail-ldap's mailHost); nil: this host.
    public var homeHost: String?

    public init(name: [UInt8], real: [UInt8], dir: String, uid: uid_t, gid: gid_t, homeHost: String? = nil) {
        self.name = name
        self.real = real
        self.dir = dir
        self.uid = uid
        self.gid = gid
        self.homeHost = homeHost
    }

    public var isAlias: Bool { name != real }

    public var line: [UInt8] {
        name + [Ascii.colon] + real + Array(":\(dir):\(uid):\(gid)".utf8) + (homeHost.map { Array(":\($0)".utf8) } ?? [])
    }

    public var cdbData: [UInt8] {
        real + [0] + Array(dir.utf8) + [0] + Array("\(uid)".utf8) + [0] + Array("\(gid)".utf8)
            + (homeHost.map { [0] + Array($0.utf8) } ?? [])
    }

    public static func parse(line: [UInt8]) -> VDomain? {
        let f = line.split(byte: Ascii.colon)
        guard f.count == 5 || f.count == 6 else { return nil }
        return make(name: f[0], fields: Array(f[1...]))
    }

    public static func parse(name: [UInt8], cdbData: [UInt8]) -> VDomain? {
        make(name: name, fields: cdbData.split(byte: 0))
    }

    /// real, dir, uid, gid[, home host]
    static func make(name: [UInt8], fields f: [[UInt8]]) -> VDomain? {
        guard f.count == 4 || f.count == 5, !name.isEmpty, !f[0].isEmpty, f[1].first == Ascii.slash,
              let u = Decimal.parse(f[2]), let g = Decimal.parse(f[3]),
              u <= Int(UInt32.max), g <= Int(UInt32.max) else { return nil }
        let host = f.count == 5 ? HomeHost.parse(f[4]) : nil
        if f.count == 5 && host == nil { return nil }
        return VDomain(name: name, real: f[0], dir: f[1].string, uid: uid_t(u), gid: gid_t(g), homeHost: host)
    }
}

/// One vpasswd line.
public struct VUser: Sendable, Equatable {
    /// vpopmail's gid flags that we honour.
    public static let flagNoPOP = 0x02
    public static let flagBounceMail = 0x10

    public var name: [UInt8]
    public var hash: [UInt8]
    public var uidField: Int
    public var flags: Int
    public var gecos: [UInt8]
    public var dir: String
    public var quota: Quota
    public var clear: [UInt8]?
    /// The cluster host holding this mailbox (DIR/vmailhost); nil: the
    /// domain's default.
    public var homeHost: String?
    /// The host vmoveuser is moving this mailbox to (DIR/vmoving); while
    /// set, the mailbox takes no mail and no login here (try later).
    public var movingTo: String?

    public init(name: [UInt8], hash: [UInt8], uidField: Int = 0, flags: Int = 0, gecos: [UInt8], dir: String,
                quota: Quota, clear: [UInt8]? = nil, homeHost: String? = nil) {
        self.homeHost = homeHost
        self.name = name
        self.hash = hash
        self.uidField = uidField
        self.flags = flags
        self.gecos = gecos
        self.dir = dir
        self.quota = quota
        self.clear = clear
    }

    public var maildir: String { dir + "/Maildir" }

    public var line: [UInt8] {
        var l = name + [Ascii.colon] + hash + Array(":\(uidField):\(flags):".utf8) + gecos
        l += Array(":\(dir):\(quota.text)".utf8)
        if let c = clear { l += [Ascii.colon] + c }
        return l
    }

    /// The vpasswd.cdb value: the line, then NUL and the home host, then
    /// NUL and the host a move is under way to.
    public var cdbData: [UInt8] {
        var v = line
        if homeHost != nil || movingTo != nil { v += [0] + Array((homeHost ?? "").utf8) }
        if let m = movingTo { v += [0] + Array(m.utf8) }
        return v
    }

    /// Parses a vpasswd.cdb value (`cdbData`).
    public static func parse(cdbData: [UInt8]) -> VUser? {
        let f = cdbData.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map(Array.init)
        guard var u = parse(line: f[0]) else { return nil }
        if f.count > 1 && !(f[1].isEmpty && f.count > 2) {
            guard let h = HomeHost.parse(f[1]) else { return nil }
            u.homeHost = h
        }
        if f.count > 2 {
            guard let m = HomeHost.parse(f[2]) else { return nil }
            u.movingTo = m
        }
        return u
    }

    /// Parses a vpasswd line (7 fields, or 8 with the clear password).
    public static func parse(line: [UInt8]) -> VUser? {
        var l = line
        if l.last == Ascii.cr { l.removeLast() }
        // The clear password is the last field and may itself hold ':'.
        var f: [[UInt8]] = []
        var start = 0
        for i in 0..<l.count where l[i] == Ascii.colon && f.count < 7 {
            f.append(Array(l[start..<i]))
            start = i + 1
        }
        f.append(Array(l[start...]))
        guard f.count >= 7, !f[0].isEmpty, f[5].first == Ascii.slash,
              let u = Decimal.parse(f[2].isEmpty ? Array("0".utf8) : f[2]),
              let g = Decimal.parse(f[3].isEmpty ? Array("0".utf8) : f[3]),
              let q = Quota.parse(f[6]) else { return nil }
        return VUser(name: f[0], hash: f[1], uidField: u, flags: g, gecos: f[4], dir: f[5].string,
                     quota: q, clear: f.count > 7 && !f[7].isEmpty ? f[7] : nil)
    }

    public func mailbox(domain: VDomain) -> Mailbox {
        var m = Mailbox(login: name + [Ascii.at] + domain.real, uid: domain.uid, gid: domain.gid, home: dir,
                        maildir: maildir, shell: "/bin/false", quota: quota, passwordHash: hash, clearPassword: clear,
                        active: flags & VUser.flagNoPOP == 0, bounceMail: flags & VUser.flagBounceMail != 0,
                        initGroups: false)
        m.homeHost = homeHost ?? domain.homeHost
        return m
    }
}

/// Alias lines: "alias:target".
public enum VAliases {
    public static func parse(_ data: [UInt8]) -> [(name: [UInt8], target: [UInt8])] {
        var out: [(name: [UInt8], target: [UInt8])] = []
        for line in Control.parseList(data) {
            guard let c = line.firstIndex(of: Ascii.colon), c > 0, c + 1 < line.count else { continue }
            out.append((Array(line[0..<c]), Array(line[(c + 1)...])))
        }
        return out
    }
}
