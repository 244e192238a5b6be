// vmoveuser: moves a mailbox to another cluster host while mail keeps
// arriving, losing and duplicating none. Run on the mailbox's home host;
// the new host runs "vmoveuser -R", reached by a command the admin gives
// (-v 'ssh hostb /var/qmail/bin/vmoveuser -R') or, for a home on this
// machine, directly (-t HOME). The steps, each found done or redone by a
// rerun (the state is the directory and the names on disk):
//   1. DIR/vmoving marks the mailbox: every lookup of it here answers "try
//      later" (vdelivermail 111, checkpassword 111), so mail waits in the
//      queue and POP3 logins are refused for now.
//   2. USERDIR is renamed USERDIR:moving: a delivery that looked the
//      mailbox up before the mark either put its message there already or
//      fails (111) at its next step; we wait until no process has its
//      working directory or a file open under it (a POP3 session), then
//      send the tree. The receiver builds it in USERDIR:incoming, checks
//      it, renames it into place and names itself the home host in its
//      directory, and only then answers.
//   3. Here the home host becomes the new host and the mark goes, in one
//      directory write; qmail-send is told to retry now (SIGALRM), so the
//      mail that waited is sent to the new home (ClusterRoute).
//   4. USERDIR:moving is kept as USERDIR:moved-TIME (or removed: -r).
// At no moment do two hosts deliver into their copy: this host stops
// before the copy, the new host starts after it.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

extension Admin {
    func moveUser(_ args: [String]) throws -> [String] {
        let usage = "vmoveuser [-r] [-w seconds] -t HOME|-v COMMAND user@domain host; vmoveuser -R user@domain host"
        let o = try Options(args, flags: "rR", values: "tvw", usage: usage)
        guard o.operands.count == 2 else { throw AdminError.usage(usage) }
        let (user, domainName) = try Names.address(Array(o.operands[0].utf8))
        guard let dest = HomeHost.parse(Array(o.operands[1].utf8)) else { throw AdminError.refused("bad host name \(o.operands[1])") }
        let header = "\(user.string)@\(domainName.string) \(dest)"
        if directory == nil, let variant = try DirectoryChoice.variant(of: "vmoveuser", home: home) {
            let e = ChildProcess.exec(.init([variant] + CommandLine.arguments.dropFirst(), program: variant))
            throw MailFailure.temporary("unable to run \(variant): \(e)")
        }
        if o.flags.contains("R") {
            return try holdingMoveLock {
                if let d = directory { return try receiveMailbox(user, domainName, dest, header: header, directory: d) }
                return try receiveMailbox(user, domainName, dest, header: header)
            }
        }
        let receiver: ChildProcess.Plan
        switch (o.values["t"], o.values["v"]) {
        case (let t?, nil):
            let program = t + "/bin/vmoveuser"
            receiver = ChildProcess.Plan(program: program, argv: [program, "-R", o.operands[0], dest].map { Array($0.utf8) },
                                         environment: ChildProcess.environment(changing: ["QMAIL_HOME": t]))
        case (nil, let v?):
            receiver = ChildProcess.Plan(["/bin/sh", "-c", v + " \"$@\"", "vmoveuser", o.operands[0], dest])
        default:
            throw AdminError.usage(usage)
        }
        guard let wait = Decimal.parse(Array((o.values["w"] ?? "60").utf8)) else { throw AdminError.usage(usage) }
        return try holdingMoveLock {
            if let d = directory {
                return try moveMailbox(user, domainName, to: dest, header: header, receiver: receiver, wait: wait,
                                       remove: o.flags.contains("r"), directory: d)
            }
            return try moveMailbox(user, domainName, to: dest, header: header, receiver: receiver, wait: wait, remove: o.flags.contains("r"))
        }
    }

    /// One move at a time on a host (HOME/users/vmovelock): two runs for
    /// one mailbox would send, or receive, over each other.
    func holdingMoveLock<T>(_ body: () throws -> T) throws -> T {
        let path = home.users + "/vmovelock"
        let fd = try Sys.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { Sys.close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            throw AdminError.system("another vmoveuser is running here (\(path) is locked): rerun when it has ended")
        }
        return try body()
    }

    func moveMailbox(_ user: [UInt8], _ domainName: [UInt8], to dest: String, header: String,
                     receiver: ChildProcess.Plan, wait: Int, remove: Bool) throws -> [String] {
        signal(SIGPIPE, SIG_IGN)
        let me = try HomeHost.local(home: home)
        if dest == me { throw AdminError.refused("\(dest) is this host") }
        let address = user.string + "@" + domainName.string
        // 1. the mark
        let u: VUser = try store.withLock {
            let d = try hostedDomain(domainName)
            var users = try store.loadUsers(d)
            guard let i = users.firstIndex(where: { $0.name == user }) else { throw AdminError.refused("no such user \(address)") }
            if let to = users[i].movingTo {
                if to != dest { throw AdminError.refused("\(address) is being moved to \(to): finish that move first (vmoveuser ... \(to))") }
                return users[i]
            }
            let current = users[i].homeHost ?? d.homeHost
            if current == dest { return users[i] }   // moved: only the old copy may be left
            if let h = current, h != me { throw AdminError.refused("\(address) lives on \(h): run vmoveuser there") }
            users[i].movingTo = dest
            try store.saveDomainData(d, users: users, aliases: try store.loadAliases(d))
            return users[i]
        }
        var notes: [String] = []
        let moving = u.dir + ":moving"
        if u.movingTo != nil {
            // 2. out of delivery's reach, then copied
            notes.append(try sendAway(u.dir, to: dest, header: header, receiver: receiver, wait: wait))
            // 3. the switch, then the waiting mail
            try modifyUser(address) { u, _ in
                u.homeHost = dest
                u.movingTo = nil
            }
            notes += files.signalSend(SIGALRM)
        } else if !present(moving) {
            return ["\(address) lives on \(dest) already"]
        }
        // 4. the old copy
        return notes + (try setAside(u.dir, remove: remove))
    }

    /// Step 2: the mailbox's directory renamed DIR:moving (unless an
    /// earlier run did), waited for and sent to the receiver; says what went.
    func sendAway(_ dir: String, to dest: String, header: String, receiver: ChildProcess.Plan, wait: Int) throws -> String {
        let moving = dir + ":moving"
        if present(dir) {
            if present(moving) { throw AdminError.system("both \(dir) and \(moving) exist: keep the right one, then rerun") }
            try Sys.rename(dir, moving)
            try Sys.fsyncDirectory(FileIO.directoryOf(dir))
        } else if !present(moving) {
            throw AdminError.system("\(dir) is missing")
        }
        try Admin.waitUnused(moving, seconds: wait)
        let sent = try sendMailbox(moving, header: header, receiver: receiver)
        return "\(sent.files) files (\(sent.bytes) bytes) copied to \(dest)"
            + (sent.skipped > 0 ? "; \(sent.skipped) symbolic links or special files left out" : "")
    }

    /// Step 4: DIR:moving removed, or kept as DIR:moved-TIME.
    func setAside(_ dir: String, remove: Bool) throws -> [String] {
        let moving = dir + ":moving"
        if remove {
            try FileStore.removeTree(moving)
            return []
        }
        let kept = dir + ":moved-\(Sys.now())"
        try Sys.rename(moving, kept)
        return ["the old copy is kept as \(kept)"]
    }

    /// Runs the receiver with the stream on its input; returns what was
    /// sent once it has answered with the same figures.
    func sendMailbox(_ dir: String, header: String, receiver: ChildProcess.Plan) throws -> MailboxArchive.Summary {
        let input = try Sys.pipeCloexec()
        let output = try Sys.pipeCloexec()
        var plan = receiver
        plan.fds += [.dup(input.read, to: 0), .dup(output.write, to: 1)]
        let pid: pid_t
        do { pid = try ChildProcess.spawn(plan) } catch {
            for fd in [input.read, input.write, output.read, output.write] { Sys.close(fd) }
            throw AdminError.system("unable to start the receiver \(plan.program): \(error)")
        }
        Sys.close(input.read)
        Sys.close(output.write)
        var sent: MailboxArchive.Summary?
        var failure = ""
        do { sent = try MailboxArchive.write(root: dir, header: header, to: ByteWriter(fd: input.write, capacity: 65536)) } catch {
            failure = "\(error)"
        }
        Sys.close(input.write)
        let reply = ((try? ByteReader(fd: output.read).readAll(limit: 4096)) ?? nil) ?? []
        Sys.close(output.read)
        let status = ChildProcess.wait(pid)
        guard let s = sent, status == .exited(0), reply == Array(s.reply.utf8) else {
            let said = reply.isEmpty ? "nothing" : "\"\(reply.string.trimmingNewline)\""
            throw AdminError.system("the copy was not confirmed (\(failure.isEmpty ? "" : failure + "; ")receiver "
                                    + "\(status.map { "\($0)" } ?? "lost") and said \(said)); the mailbox stays here, marked: rerun vmoveuser")
        }
        return s
    }

    /// vmoveuser -R: the new home's side. Reads the stream on stdin into
    /// USERDIR:incoming (afresh on each run), then, holding the admin lock,
    /// puts it in place and makes this host the mailbox's home; answers on
    /// stdout.
    func receiveMailbox(_ user: [UInt8], _ domainName: [UInt8], _ dest: String, header: String) throws -> [String] {
        let me = try HomeHost.local(home: home)
        guard me == dest else { throw AdminError.refused("this host is \(me ?? "unnamed"), not \(dest) (control/clusterhost)") }
        let d = try hostedDomain(domainName)
        guard let found = try store.loadUsers(d).first(where: { $0.name == user }) else {
            throw AdminError.refused("no user \(user.string)@\(d.name.string) here: add it first (vadduser -H)")
        }
        let incoming = found.dir + ":incoming"
        if present(incoming) { try FileStore.removeTree(incoming) }
        try FileStore.makeDirectory(incoming, mode: 0o700, owner: (d.uid, d.gid))
        let got = try MailboxArchive.read(from: ByteReader(fd: 0, capacity: 65536), into: incoming, header: header, owner: (d.uid, d.gid))
        try store.withLock {
            var users = try store.loadUsers(d)
            guard let i = users.firstIndex(where: { $0.name == user }) else { throw AdminError.refused("\(user.string)@\(d.name.string) went away") }
            let live = users[i].movingTo == nil && HomeHost.remote(users[i].mailbox(domain: d), local: me) == nil
            if live {
                // an earlier run switched but could not answer
                try MailboxArchive.merge(incoming, into: users[i].dir)
                if present(incoming) { try FileStore.removeTree(incoming) }
                return
            }
            let dir = users[i].dir
            if present(dir) {
                // nothing was delivered into it (this host was not its home)
                if Admin.holdsFiles(dir) { try Sys.rename(dir, dir + ":replaced-\(Sys.now())") } else { try FileStore.removeTree(dir) }
            }
            try Sys.rename(incoming, dir)
            try Sys.fsyncDirectory(d.dir)
            users[i].homeHost = dest
            try store.saveDomainData(d, users: users, aliases: try store.loadAliases(d))
        }
        _ = files.signalSend(SIGALRM)
        try Sys.writeAll(1, got.reply)
        return []
    }

    func present(_ path: String) -> Bool { (try? Sys.lstat(path)) != nil }

    static func holdsFiles(_ path: String) -> Bool {
        guard let st = try? Sys.lstat(path) else { return false }
        if (st.st_mode & S_IFMT) != S_IFDIR { return true }
        return ((try? Sys.listDirectory(path)) ?? []).contains { holdsFiles(path + "/" + $0) }
    }

    /// Waits until no other process has its working directory or an open
    /// file under `dir` (a delivery or a POP3 session that began before
    /// the mark); throws after `seconds`.
    static func waitUnused(_ dir: String, seconds: Int) throws {
        let deadline = Sys.now() + seconds
        while let pid = processUsing(dir) {
            if Sys.now() >= deadline {
                throw AdminError.system("\(dir) is still in use by process \(pid): rerun vmoveuser when it has ended (mail waits meanwhile)")
            }
            usleep(100_000)
        }
    }

    static func processUsing(_ dir: String) -> Int? {
        for name in (try? Sys.listDirectory("/proc")) ?? [] {
            guard let pid = Decimal.parse(Array(name.utf8)), pid != Int(getpid()) else { continue }
            let fds = ((try? Sys.listDirectory("/proc/\(pid)/fd")) ?? []).map { "/proc/\(pid)/fd/\($0)" }
            for link in ["/proc/\(pid)/cwd"] + fds {
                var buf = [CChar](repeating: 0, count: 4096)
                let n = readlink(link, &buf, buf.count - 1)
                guard n > 0 else { continue }
                let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if target == dir || target.hasPrefix(dir + "/") { return pid }
            }
        }
        return nil
    }
}

extension String {
    var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
}
