// The write side of the file backend, used by the admin commands. Every
// change holds HOME/users/vlock (flock), rewrites the text file and then its
// cdb, each through a temporary file, fsync and rename, so a reader sees the
// old or the new state, never a mix.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct FileStore {
    public let home: QmailHome
    public let backend: FileBackend

    public init(home: QmailHome) {
        self.home = home
        self.backend = FileBackend(home: home, plainPasswordsEnabled: false)
    }

    /// Runs `body` holding the admin lock.
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        let fd = try Sys.open(home.users + "/vlock", O_RDWR | O_CREAT, 0o600)
        defer { Sys.close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw SysError("flock", path: home.users + "/vlock") }
        }
        return try body()
    }

    // MARK: domains

    public func loadDomains() throws -> [VDomain] {
        guard let data = try FileIO.read(backend.domainsText) else { return [] }
        var out: [VDomain] = []
        for (i, line) in Control.parseList(data).enumerated() {
            guard let d = VDomain.parse(line: line) else {
                throw MailFailure.temporary("\(backend.domainsText) line \(i + 1) is malformed")
            }
            out.append(d)
        }
        return out
    }

    public func saveDomains(_ domains: [VDomain]) throws {
        var text: [UInt8] = []
        for d in domains { text += d.line + [Ascii.lf] }
        try FileStore.writeAtomic(backend.domainsText, text, mode: 0o644)
        try CdbWriter.create(path: backend.domainsCdb, tmpPath: backend.domainsCdb + ".tmp.\(getpid())", mode: 0o644) { add in
            for d in domains { try add(d.name, d.cdbData) }
        }
    }

    // MARK: users and aliases of one domain

    public func loadUsers(_ dom: VDomain) throws -> [VUser] {
        guard let data = try FileIO.read(dom.dir + "/vpasswd") else { return [] }
        let hosts = try HomeHost.readFile(dom.dir + "/vmailhost")
        let moving = try HomeHost.readFile(dom.dir + "/vmoving")
        var out: [VUser] = []
        var n = 0
        for line in data.split(separator: Ascii.lf, omittingEmptySubsequences: true) {
            n += 1
            guard var u = VUser.parse(line: Array(line)) else {
                throw MailFailure.temporary("\(dom.dir)/vpasswd line \(n) is malformed")
            }
            u.homeHost = hosts[u.name]
            u.movingTo = moving[u.name]
            out.append(u)
        }
        return out
    }

    public func loadAliases(_ dom: VDomain) throws -> [(name: [UInt8], target: [UInt8])] {
        guard let data = try FileIO.read(dom.dir + "/valias") else { return [] }
        return VAliases.parse(data)
    }

    /// Writes vpasswd, valias, vmailhost and vmoving (each when a mailbox
    /// has its field set or the file exists) and the vpasswd.cdb built
    /// from them. The files hold password hashes: mode 0600, owned by the
    /// domain's user.
    public func saveDomainData(_ dom: VDomain, users: [VUser], aliases: [(name: [UInt8], target: [UInt8])]) throws {
        var text: [UInt8] = []
        for u in users { text += u.line + [Ascii.lf] }
        try FileStore.writeAtomic(dom.dir + "/vpasswd", text, mode: 0o600, owner: (dom.uid, dom.gid))
        var atext: [UInt8] = []
        for a in aliases { atext += a.name + [Ascii.colon] + a.target + [Ascii.lf] }
        try FileStore.writeAtomic(dom.dir + "/valias", atext, mode: 0o600, owner: (dom.uid, dom.gid))
        for (file, field) in [("vmailhost", \VUser.homeHost), ("vmoving", \VUser.movingTo)] {
            let text = HomeHost.fileText(users, field)
            if !text.isEmpty || Sys.exists(dom.dir + "/" + file) {
                try FileStore.writeAtomic(dom.dir + "/" + file, text, mode: 0o644, owner: (dom.uid, dom.gid))
            }
        }
        var grouped: [[UInt8]: [UInt8]] = [:]
        var order: [[UInt8]] = []
        for a in aliases {
            if grouped[a.name] == nil { order.append(a.name); grouped[a.name] = a.target } else { grouped[a.name]! += [Ascii.lf] + a.target }
        }
        let path = dom.dir + "/vpasswd.cdb"
        try CdbWriter.create(path: path, tmpPath: path + ".tmp.\(getpid())", mode: 0o600) { add in
            for u in users { try add([Ascii.equals] + u.name, u.cdbData) }
            for name in order { try add([Ascii.at] + name, grouped[name]!) }
        }
        FileStore.chown(path, dom.uid, dom.gid)
    }

    // MARK: helpers

    /// write tmp, fchown, fsync, rename, fsync the directory.
    public static func writeAtomic(_ path: String, _ bytes: [UInt8], mode: mode_t, owner: (uid_t, gid_t)? = nil) throws {
        let tmp = "\(path).tmp.\(getpid())"
        let fd = try Sys.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode)
        do {
            try Sys.writeAll(fd, bytes)
            if fchmod(fd, mode) != 0 { throw SysError("chmod", path: tmp) }
            if let (u, g) = owner, geteuid() == 0, fchown(fd, u, g) != 0 { throw SysError("chown", path: tmp) }
            try Sys.fsync(fd)
            Sys.close(fd)
            try Sys.rename(tmp, path)
        } catch {
            Sys.close(fd)
            _ = unlink(tmp)
            throw error
        }
        try Sys.fsyncDirectory(FileIO.directoryOf(path))
    }

    /// chown when running as root (a single-user home owns everything
    /// already); a symlink is changed itself, never what it points at.
    public static func chown(_ path: String, _ uid: uid_t, _ gid: gid_t) {
        if geteuid() == 0 { _ = lchown(path, uid, gid) }
    }

    /// mkdir with owner and mode; an existing directory is accepted. The
    /// owner and mode are set through a descriptor opened with O_NOFOLLOW,
    /// so a symlink swapped in meanwhile (the mailbox account owns the
    /// domain directory) is never followed as root.
    public static func makeDirectory(_ path: String, mode: mode_t, owner: (uid_t, gid_t)) throws {
        if Glibc.mkdir(path, mode) != 0 {
            if errno == EEXIST, let st = try? Sys.lstat(path), (st.st_mode & S_IFMT) == S_IFDIR { return }
            throw SysError("mkdir", path: path)
        }
        let fd = try Sys.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        defer { Sys.close(fd) }
        if geteuid() == 0, fchown(fd, owner.0, owner.1) != 0 { throw SysError("chown", path: path) }
        if fchmod(fd, mode) != 0 { throw SysError("chmod", path: path) }
    }

    /// A Maildir (dir/{tmp,new,cur}) owned by the mailbox's user.
    public static func makeMaildir(_ path: String, owner: (uid_t, gid_t)) throws {
        try makeDirectory(path, mode: 0o700, owner: owner)
        for sub in ["tmp", "new", "cur"] { try makeDirectory(path + "/" + sub, mode: 0o700, owner: owner) }
    }

    /// Removes a directory tree (lstat: symlinks are removed, not followed).
    public static func removeTree(_ path: String) throws {
        let st = try Sys.lstat(path)
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for e in try Sys.listDirectory(path) { try removeTree(path + "/" + e) }
            if rmdir(path) != 0 { throw SysError("rmdir", path: path) }
        } else {
            try Sys.unlink(path)
        }
    }
}
