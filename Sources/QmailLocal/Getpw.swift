// qmail-getpw(8): the passwd-file half of "who handles this local part".
// A user is an account with a nonzero uid whose home exists and is owned
// by it; the longest prefix of the local part (cut at '-') that names a
// user wins; everything else goes to the `alias` user with ext = local.
// In a single-user home every address that is not the home owner's goes to
// alias, whose home is HOME/alias and whose uid is that directory's owner.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct PasswdEntry: Equatable {
    public var name: [UInt8]
    public var uid: uid_t
    public var gid: gid_t
    public var home: [UInt8]
    public init(name: [UInt8], uid: uid_t, gid: gid_t, home: [UInt8]) {
        self.name = name; self.uid = uid; self.gid = gid; self.home = home
    }
}

/// Failure of a lookup, as a qlx exit code.
public struct GetpwError: Error, Equatable { public let code: Int32 }

public struct Getpw {
    /// qmail's conf-break.
    public static let breakChar = Ascii.minus
    /// Account names qmail-getpw considers are shorter than this.
    public static let maxUserLength = 32

    /// Finds an account; nil when there is none. Throws for a system error.
    public var getpwnam: ([UInt8]) throws -> PasswdEntry?
    /// The owner of a path; nil when it does not exist. Throws for a temporary error.
    public var owner: ([UInt8]) throws -> (uid: uid_t, gid: gid_t)?
    /// Single-user home: the alias home and the only uid that can be used.
    public var singleUser: (aliasHome: [UInt8], uid: uid_t)?

    public init(getpwnam: @escaping ([UInt8]) throws -> PasswdEntry?,
                owner: @escaping ([UInt8]) throws -> (uid: uid_t, gid: gid_t)?,
                singleUser: (aliasHome: [UInt8], uid: uid_t)? = nil) {
        self.getpwnam = getpwnam
        self.owner = owner
        self.singleUser = singleUser
    }

    /// The system's passwd database and file system.
    public static func system(home: QmailHome, ids: QmailIds) -> Getpw {
        var g = Getpw(getpwnam: Getpw.systemGetpwnam, owner: Getpw.systemOwner)
        if ids.singleUser {
            g.singleUser = (Array((home.path + "/alias").utf8), geteuid())
        }
        return g
    }

    public static func systemGetpwnam(_ name: [UInt8]) throws -> PasswdEntry? {
        errno = 0
        let pw = BytePath.with(name) { Glibc.getpwnam($0) }
        guard let pw else {
            switch errno {
            case EIO, EMFILE, ENFILE, ENOMEM, EAGAIN, EINTR, ETXTBSY: throw GetpwError(code: QLX.sys)
            default: return nil
            }
        }
        let p = pw.pointee
        func bytes(_ s: UnsafeMutablePointer<CChar>?) -> [UInt8] {
            guard let s else { return [] }
            return Array(UnsafeRawBufferPointer(start: s, count: strlen(s)))
        }
        return PasswdEntry(name: bytes(p.pw_name), uid: p.pw_uid, gid: p.pw_gid, home: bytes(p.pw_dir))
    }

    public static func systemOwner(_ path: [UInt8]) throws -> (uid: uid_t, gid: gid_t)? {
        guard let st = BytePath.stat(path) else {
            if errnoIsTemporary(errno) { throw GetpwError(code: QLX.nfs) }
            return nil
        }
        return (st.st_uid, st.st_gid)
    }

    /// The user controlling `local`.
    public func lookup(_ local: [UInt8]) throws -> UserAssignment {
        if let found = try userWithExtension(local) { return found }
        return try alias(local)
    }

    /// The longest prefix of `local`, ending at the end or before a '-', that
    /// names a user.
    func userWithExtension(_ local: [UInt8]) throws -> UserAssignment? {
        var cut = local.count
        while true {
            if cut < Getpw.maxUserLength && (cut == local.count || local[cut] == Getpw.breakChar) && cut > 0 {
                let name = local[0..<cut].map(Ascii.lower)
                if let pw = try getpwnam(name), pw.uid != 0, singleUser == nil || singleUser!.uid == pw.uid,
                   let own = try owner(pw.home), own.uid == pw.uid {
                    let hasExt = cut < local.count
                    return UserAssignment(user: pw.name, uid: Array(String(pw.uid).utf8), gid: Array(String(pw.gid).utf8),
                                          home: pw.home, dash: hasExt ? [Ascii.minus] : [],
                                          ext: hasExt ? Array(local[(cut + 1)...]) : [])
                }
            }
            if cut == 0 { return nil }
            cut -= 1
        }
    }

    func alias(_ local: [UInt8]) throws -> UserAssignment {
        if let su = singleUser {
            guard let own = try owner(su.aliasHome) else { throw GetpwError(code: QLX.noAlias) }
            return UserAssignment(user: Array("alias".utf8), uid: Array(String(own.uid).utf8),
                                  gid: Array(String(own.gid).utf8), home: su.aliasHome,
                                  dash: [Ascii.minus], ext: local)
        }
        guard let pw = try getpwnam(Array("alias".utf8)) else { throw GetpwError(code: QLX.noAlias) }
        return UserAssignment(user: pw.name, uid: Array(String(pw.uid).utf8), gid: Array(String(pw.gid).utf8),
                              home: pw.home, dash: [Ascii.minus], ext: local)
    }

    /// qmail-getpw's main: prints the six NUL-terminated fields, or exits
    /// nonzero without printing anything.
    public static func main(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else { return QmailExit.permanent }
        let home = QmailHome.current()
        let ids: QmailIds
        do { ids = try QmailIds.load(home: home) } catch {
            Sys.warn("qmail-getpw: fatal: \(error)"); return QLX.sys
        }
        do {
            let a = try Getpw.system(home: home, ids: ids).lookup(argv[1])
            do { try Sys.writeAll(1, a.nulTerminated) } catch { return QLX.sys }
            return 0
        } catch let e as GetpwError {
            return e.code
        } catch {
            return QLX.sys
        }
    }
}
