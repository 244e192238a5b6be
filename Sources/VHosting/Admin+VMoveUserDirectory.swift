// vmoveuser-ldap / vmoveuser-mysql: the move of Admin+VMoveUser.swift where
// the home host is kept by a directory server (sqMailHost, users.mail_host),
// one directory for every host, written on the provider or primary. Only
// the old home host delivers into the mailbox, so only it must stop: the
// mark is a line in its own DOMAINDIR/vmoving (the file backend's file),
// which its lookups (RemoteDirectory) answer with "try later" for as long
// as the directory it reads does not yet name the new host. The steps:
//   1. the mark line here;
//   2. USERDIR renamed aside, waited for and sent as for the file store;
//      the receiver installs the copy, writes itself as the home host on
//      the provider, and only then answers;
//   3. once this host's own directory (its replica) names the new home,
//      the mark goes and qmail-send retries now: the waiting mail goes
//      there. Until then the mark holds it here; a replica that lags
//      longer than -w leaves the mark for a rerun (the mail waits, and
//      goes to the new home as soon as the replica has the change);
//   4. the old copy is kept or removed.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

extension Admin {
    func moveMailbox(_ user: [UInt8], _ domainName: [UInt8], to dest: String, header: String, receiver: ChildProcess.Plan,
                     wait: Int, remove: Bool, directory: (Bool) -> HomeHostStore) throws -> [String] {
        signal(SIGPIPE, SIG_IGN)
        let me = try HomeHost.local(home: home)
        if dest == me { throw AdminError.refused("\(dest) is this host") }
        let writer = directory(true)
        let (m, dom) = try Admin.directoryMailbox(writer, user, domainName)
        let name = m.userName
        let address = name.string + "@" + dom.real.string
        guard !dom.dir.isEmpty else {
            throw AdminError.refused("\(address): its domain names no directory (sqDomainDirectory, domains.dir) to keep the mark in")
        }
        // The mailbox's directory is what moves: it must be its own and hold the Maildir.
        guard m.home != dom.dir, m.maildir.hasPrefix(m.home + "/") else {
            throw AdminError.refused("\(address): its Maildir \(m.maildir) is not inside a directory of its own (\(m.home))")
        }
        let marks = dom.dir + "/vmoving"
        let marked = try HomeHost.readFile(marks)[name]
        if let to = marked, to != dest {
            throw AdminError.refused("\(address) is being moved to \(to): finish that move first (vmoveuser ... \(to))")
        }
        let moving = m.home + ":moving"
        var notes: [String] = []
        if marked == nil && m.homeHost != dest {
            if let h = m.homeHost, h != me { throw AdminError.refused("\(address) lives on \(h): run vmoveuser there") }
            try Admin.setMark(marks, name, dest, dom)
        }
        if m.homeHost != dest {
            // 2. out of delivery's reach, then copied; the receiver switches the directory
            notes.append(try sendAway(m.home, to: dest, header: header, receiver: receiver, wait: wait))
            // (written again here, should the receiver have been one that keeps its own directory)
            try writer.setHomeHost(user: name, domain: dom.real, host: dest)
        }
        // 3. the mark goes once this host reads the new home
        if try HomeHost.readFile(marks)[name] != nil {
            try Admin.waitForHome(directory(false), name, dom.real, dest, seconds: wait)
            try Admin.setMark(marks, name, nil, dom)
            notes += files.signalSend(SIGALRM)
        } else if !present(moving) {
            return ["\(address) lives on \(dest) already"]
        }
        // 4. the old copy
        if present(moving) { notes += try setAside(m.home, remove: remove) }
        return notes
    }

    /// vmoveuser-ldap/-mysql -R: installs the copy in the mailbox's
    /// directory here and writes this host as its home on the provider.
    func receiveMailbox(_ user: [UInt8], _ domainName: [UInt8], _ dest: String, header: String,
                        directory: (Bool) -> HomeHostStore) throws -> [String] {
        let me = try HomeHost.local(home: home)
        guard me == dest else { throw AdminError.refused("this host is \(me ?? "unnamed"), not \(dest) (control/clusterhost)") }
        let writer = directory(true)
        let (m, dom) = try Admin.directoryMailbox(writer, user, domainName)
        let dir = m.home
        let parent = FileIO.directoryOf(dir)
        guard present(parent) else { throw AdminError.system("\(parent) is missing on this host: make it (owned by uid \(m.uid))") }
        let incoming = dir + ":incoming"
        if present(incoming) { try FileStore.removeTree(incoming) }
        try FileStore.makeDirectory(incoming, mode: 0o700, owner: (m.uid, m.gid))
        let got = try MailboxArchive.read(from: ByteReader(fd: 0, capacity: 65536), into: incoming, header: header, owner: (m.uid, m.gid))
        if m.homeHost == me {
            // an earlier run switched but could not answer
            try MailboxArchive.merge(incoming, into: dir)
            if present(incoming) { try FileStore.removeTree(incoming) }
        } else {
            if present(dir) {
                // nothing was delivered into it (this host was not its home)
                if Admin.holdsFiles(dir) { try Sys.rename(dir, dir + ":replaced-\(Sys.now())") } else { try FileStore.removeTree(dir) }
            }
            try Sys.rename(incoming, dir)
            try Sys.fsyncDirectory(parent)
            try writer.setHomeHost(user: m.userName, domain: dom.real, host: dest)
        }
        _ = files.signalSend(SIGALRM)
        try Sys.writeAll(1, got.reply)
        return []
    }

    /// The mailbox as the directory (its writer: marks do not hide it) has it.
    static func directoryMailbox(_ d: HomeHostStore, _ user: [UInt8], _ domain: [UInt8]) throws -> (Mailbox, VDomain) {
        switch d.recipient(user: user, domain: domain, aliases: false) {
        case .mailbox(let m, let dom): return (m, dom)
        case .temporary(let why): throw MailFailure.temporary(why)
        case .alias, .noSuchUser, .noSuchDomain: throw AdminError.refused("no such mailbox \(user.string)@\(domain.string)")
        }
    }

    /// Waits until this host's lookups name `dest` as the mailbox's home
    /// (its replica has the provider's change); throws after `seconds`.
    static func waitForHome(_ reader: HomeHostStore, _ user: [UInt8], _ domain: [UInt8], _ dest: String, seconds: Int) throws {
        let deadline = Sys.now() + seconds
        var said = ""
        while true {
            switch reader.recipient(user: user, domain: domain, aliases: false) {
            case .mailbox(let m, _) where m.homeHost == dest: return
            case .temporary(let why): said = why
            default: said = "another home host"
            }
            if Sys.now() >= deadline {
                throw AdminError.system("the directory this host reads does not name \(dest) yet (\(said)): the mailbox stays "
                                        + "marked here and its mail waits (it goes to \(dest) once the directory has the change); rerun vmoveuser")
            }
            usleep(200_000)
        }
    }

    /// Sets (nil: removes) `user`'s line in DOMAINDIR/vmoving, readable by
    /// the domain's deliveries.
    static func setMark(_ path: String, _ user: [UInt8], _ host: String?, _ dom: VDomain) throws {
        var marks = try HomeHost.readFile(path)
        marks[user] = host
        var text: [UInt8] = []
        for (u, h) in marks.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) { text += u + [Ascii.colon] + Array(h.utf8) + [Ascii.lf] }
        try FileStore.writeAtomic(path, text, mode: 0o644, owner: (dom.uid, dom.gid))
    }
}

extension Mailbox {
    /// The local part of the login.
    var userName: [UInt8] { login.lastIndex(of: Ascii.at).map { Array(login[..<$0]) } ?? login }
}
