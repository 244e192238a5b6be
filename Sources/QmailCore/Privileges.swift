// Taking another user's ids for good: the one privilege drop, used before
// exec by every program that starts something as another user and by the
// programs that give up root themselves.
#if canImport(Glibc)
import Glibc
#endif

/// The ids a process runs with.
public struct Credentials: Equatable, Sendable {
    public enum Groups: Equatable, Sendable {
        /// Exactly these supplementary groups.
        case only([gid_t])
        /// The user's groups from the group database (initgroups(3)), for
        /// system accounts; allocates, so not for a forked child.
        case member(user: String)
        /// Ours as they are: only for a setuid program going back to its
        /// caller, whose groups these already are.
        case unchanged
    }

    public var uid: uid_t
    public var gid: gid_t
    public var groups: Groups

    /// Supplementary groups default to the one `gid`.
    public init(uid: uid_t, gid: gid_t, groups: Groups? = nil) {
        self.uid = uid
        self.gid = gid
        self.groups = groups ?? .only([gid])
    }
}

public enum Privileges {
    /// Becomes `c`: supplementary groups, gid, uid, in that order, then
    /// checks that the ids took and, unless `c` is root, that setuid(0)
    /// and setgid(0) now fail. Returns nil on success, else what failed;
    /// the caller must not go on (it is still privileged, or half so).
    /// Without root nothing can change: that is fine only when we already
    /// are `c.uid`.
    public static func drop(to c: Credentials) -> SysError? {
        if geteuid() != 0 {
            if getuid() == c.uid && geteuid() == c.uid { return irreversible(c) ? nil : SysError("drop privileges", errno: EPERM) }
            return SysError("setuid", errno: EPERM)
        }
        switch c.groups {
        case .only(let list):
            if list.withUnsafeBufferPointer({ setgroups(list.count, $0.baseAddress) }) != 0 { return SysError("setgroups") }
        case .member(let user):
            if initgroups(user, c.gid) != 0 { return SysError("initgroups") }
        case .unchanged: break
        }
        if setgid(c.gid) != 0 { return SysError("setgid") }
        if setuid(c.uid) != 0 { return SysError("setuid") }
        if getuid() != c.uid || geteuid() != c.uid || getgid() != c.gid || getegid() != c.gid {
            return SysError("drop privileges", errno: EPERM)
        }
        return irreversible(c) ? nil : SysError("drop privileges", errno: EPERM)
    }

    /// True when root's ids cannot be taken back (trivially, for root itself).
    static func irreversible(_ c: Credentials) -> Bool {
        if c.uid == 0 { return true }
        if setuid(0) == 0 { return false }
        if c.gid != 0 && setgid(0) == 0 { return false }
        return true
    }
}
