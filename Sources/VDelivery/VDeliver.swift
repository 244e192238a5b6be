// vdelivermail: the delivery agent of a hosted domain, run by qmail-local
// from the domain's .qmail-default:
//     | HOME/bin/vdelivermail '' bounce-no-mailbox
// (qmail-local runs that line in its own process: inProcess below).
// It runs as the domain's user (users/assign), finds the recipient
// (EXT, else LOCAL, at HOST) in the file backend and delivers:
//   - a mailbox: its own DIR/.qmail if present (forwards, Maildirs, mboxes,
//     programs), else its Maildir, within its Maildir++ quota;
//   - an alias (valias): forwards to each target;
//   - anyone else: argv[2]: "bounce-no-mailbox" (the default), "delete",
//     an address (catch-all forward), a user of the domain (catch-all), or
//     an absolute Maildir path.
// A mailbox whose home is another cluster host is sent there over QMTP
// (ClusterRoute).
// Exit 0 delivered, 100 bounce, 111 retry later. It trusts the qmail home
// and the environment qmail-local gives it.
// control/userdirectory picks the backend: "file" (the default, linked
// here), "ldap" or "mysql": vdelivermail then execs HOME/bin/vdelivermail-ldap
// or vdelivermail-mysql with the same arguments, so this program never links
// libldap or libmariadb (one exec, about 2 ms, only on those sites).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailLocal
import QmailQueue
import UserDirectory

public struct VDeliver {
    public let home: QmailHome
    public let backend: RecipientDirectory
    public let env: (String) -> [UInt8]?
    let message: MessageInput
    /// The address we deliver for, for Delivered-To and loop detection.
    var deliveredTo: [UInt8] = []

    public static let noMailbox = "bounce-no-mailbox"

    public init(home: QmailHome, message: MessageInput, backend: RecipientDirectory? = nil,
                env: @escaping (String) -> [UInt8]? = VDeliver.environment) {
        self.home = home
        self.backend = backend ?? FileBackend(home: home, plainPasswordsEnabled: false)
        self.message = message
        self.env = env
    }

    public static func environment(_ name: String) -> [UInt8]? {
        guard let p = getenv(name) else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: strlen(p)))
    }

    /// The program for control/userdirectory; nil for the file backend.
    public static func backendProgram(home: QmailHome) throws -> String? {
        try DirectoryChoice.variant(of: "vdelivermail", home: home)
    }

    /// The whole program as an exit code, its failure (if any) reported
    /// on stderr: vdelivermail's main, and qmail-local's in-process run.
    public static func exitCode(argv: [String], backend: ((QmailHome) -> RecipientDirectory)? = nil) -> Int32 {
        guard let failure = main(argv: argv, backend: backend) else { return 0 }
        Sys.warn(failure.description)
        return failure.exitCode
    }

    /// qmail-local's in-process run of `| HOME/bin/vdelivermail ...`:
    /// taken only when argv[0] is this home's own vdelivermail (the same
    /// file) and control/userdirectory picks the file backend; otherwise
    /// nil, and qmail-local runs the command through sh as ever (so LDAP
    /// and MySQL sites, or another program installed under that name,
    /// behave as before). Saves sh's and vdelivermail's exec per message.
    /// The name is checked too: HOME/bin's other programs may be the same
    /// file (one multi-call file, QmailCore/MultiCall.swift).
    public static func inProcess(_ argv: [[UInt8]]) -> Int32? {
        guard let program = argv.first, program.first == Ascii.slash,
              program.split(separator: Ascii.slash).last.map(Array.init) == Array("vdelivermail".utf8) else { return nil }
        let home = QmailHome.current()
        guard let named = BytePath.stat(program), let ours = BytePath.stat(Array(home.bin("vdelivermail").utf8)),
              (ours.st_mode & S_IFMT) == S_IFREG, named.st_dev == ours.st_dev, named.st_ino == ours.st_ino else {
            return nil
        }
        let args = argv.map { String(decoding: $0, as: UTF8.self) }
        do {
            if try backendProgram(home: home) != nil { return nil }
        } catch {
            // vdelivermail itself would report this very failure
            return exitCode(argv: args)
        }
        return exitCode(argv: args, backend: { FileBackend(home: $0, plainPasswordsEnabled: false) })
    }

    /// The whole program; returns nil on success or the failure to report.
    /// `backend` is given by vdelivermail-ldap/-mysql; vdelivermail itself
    /// passes nil and follows control/userdirectory.
    public static func main(argv: [String], backend: ((QmailHome) -> RecipientDirectory)? = nil) -> MailFailure? {
        guard argv.count >= 3 else {
            return .temporary("vdelivermail: usage: vdelivermail '' bounce-no-mailbox|delete|address|user|/path/Maildir")
        }
        let home = QmailHome.current()
        if backend == nil {
            do {
                if let program = try backendProgram(home: home) {
                    let e = ChildProcess.exec(.init([program] + argv.dropFirst(), program: program))
                    return .temporary("vdelivermail: \(e)")
                }
            } catch let f as MailFailure { return f } catch { return .temporary("\(error)") }
        }
        signal(SIGPIPE, SIG_IGN)
        let message: MessageInput
        do { message = try MessageInput(fd: 0) } catch let f as MailFailure { return f } catch { return .temporary("\(error)") }
        var d = VDeliver(home: home, message: message, backend: backend?(home))
        return d.run(unknownAction: Array(argv[2].utf8))
    }

    /// The recipient from qmail-local's environment: EXT (the part after
    /// the domain's "domain-" prefix), else LOCAL; HOST is the domain.
    func recipientParts() -> (user: [UInt8], domain: [UInt8])? {
        guard let host = env("HOST"), !host.isEmpty else { return nil }
        var user = env("EXT") ?? []
        if user.isEmpty { user = env("LOCAL") ?? [] }
        if user.isEmpty { return nil }
        return (user.lowercasedASCII(), host.lowercasedASCII())
    }

    public mutating func run(unknownAction: [UInt8]) -> MailFailure? {
        guard let (user, domain) = recipientParts() else {
            return .temporary("vdelivermail: HOST and EXT or LOCAL must be set (run me from qmail-local)")
        }
        do {
            try deliver(user: user, domain: domain, unknownAction: unknownAction, catchAllDepth: 0)
            return nil
        } catch let f as MailFailure {
            return f
        } catch {
            return .temporary("\(error)")
        }
    }

    mutating func deliver(user: [UInt8], domain: [UInt8], unknownAction: [UInt8], catchAllDepth: Int) throws {
        var found = backend.recipient(user: user, domain: domain, aliases: true)
        // user-ext@domain reaches user when there is no user-ext (qmail's
        // extension addresses).
        if case .noSuchUser = found, let dash = user.firstIndex(of: Ascii.minus), dash > 0 {
            let base = backend.recipient(user: Array(user[0..<dash]), domain: domain, aliases: true)
            if case .mailbox = base { found = base }
        }
        switch found {
        case .temporary(let why):
            throw MailFailure.temporary(why)
        case .noSuchDomain:
            throw MailFailure.permanent("Sorry, \(domain.string) is not hosted here.", "5.1.2")
        case .mailbox(let m, let dom):
            let login = m.login.count > 0 ? m.login : user + [Ascii.at] + dom.real
            // A mailbox on another cluster host: that host delivers it
            // (bounce flags, forwards and all).
            if let host = try ClusterRoute.remoteHome(m, home: home) {
                try ClusterRoute(home: home).send(message, to: host, address: login, sender: env("SENDER") ?? [])
                return
            }
            try markDelivered(login)
            if m.bounceMail { throw MailFailure.permanent("Sorry, this mailbox does not accept mail.", "5.2.1") }
            try deliverToMailbox(m)
            // The directory's forwards for this mailbox (LDAP, SQL).
            if !m.forwards.isEmpty { try forward(m.forwards) }
            answerVacation(m)
        case .alias(let targets, let dom):
            try markDelivered(user + [Ascii.at] + dom.real)
            try deliverToTargets(targets, base: dom.dir)
        case .noSuchUser(let dom):
            try unknownUser(user: user, dom: dom, action: unknownAction, depth: catchAllDepth)
        }
    }

    /// Sets the Delivered-To line and refuses a message that already has it.
    mutating func markDelivered(_ address: [UInt8]) throws {
        deliveredTo = address
        if try message.headerContains(Array("Delivered-To: ".utf8) + address) {
            throw MailFailure.permanent("This message is looping: it already has my Delivered-To line.", "5.4.6")
        }
    }

    var headerLines: [UInt8] {
        var rp = env("RPLINE") ?? (Array("Return-Path: <".utf8) + (env("SENDER") ?? []) + Array(">\n".utf8))
        if rp.last != Ascii.lf { rp.append(Ascii.lf) }
        let dt = (Array("Delivered-To: ".utf8) + deliveredTo).map { $0 == Ascii.lf ? 95 : $0 } + [Ascii.lf]
        return rp + dt
    }

    func unknownUser(user: [UInt8], dom: VDomain, action: [UInt8], depth: Int) throws {
        if action.isEmpty || action == Array(VDeliver.noMailbox.utf8) {
            throw MailFailure.permanent("Sorry, no mailbox here by that name.", "5.1.1")
        }
        if action == Array("delete".utf8) { return }
        var me = self
        // Our Delivered-To line goes on caught mail too, so a catch-all
        // that routes back here is seen as the loop it is.
        try me.markDelivered(user + [Ascii.at] + dom.real)
        if action.first == Ascii.slash {
            // vpopmail's form: a user's directory (its Maildir is used), or a Maildir.
            var path = action.string
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            if Sys.isDirectory(path + "/Maildir/new") { path += "/Maildir" }
            guard Sys.isDirectory(path + "/new") else {
                throw MailFailure.temporary("catch-all \(action.string) is neither a Maildir nor a mailbox directory", "4.2.1")
            }
            try me.deliverToMaildir(path, quota: .unlimited)
        } else if action.contains(Ascii.at) {
            try me.forward([action])
        } else {
            // A user of the same domain catches everything; never twice.
            if depth > 0 { throw MailFailure.permanent("Sorry, no mailbox here by that name.", "5.1.1") }
            try me.deliver(user: action.lowercasedASCII(), domain: dom.real, unknownAction: Array(VDeliver.noMailbox.utf8), catchAllDepth: depth + 1)
        }
    }

    /// A mailbox: its .qmail when there is one, else its Maildir.
    func deliverToMailbox(_ m: Mailbox) throws {
        let dotQmail = m.home + "/.qmail"
        let data: [UInt8]?
        do { data = try FileIO.read(dotQmail, limit: 1 << 20) } catch { throw MailFailure.temporary("unable to read \(dotQmail): \(error)") }
        if let d = data {
            let lines = Control.parseList(d)
            if !lines.isEmpty {
                try deliverToTargets(lines, base: m.home, quotaFor: m)
                return
            }
        }
        try deliverToMaildir(m.maildir, quota: m.quota)
    }

    /// Delivers to .qmail lines, read as qmail-local reads them (its
    /// DotQmail): "|prog", "&addr" or "addr", "/path/" or "./path/"
    /// (Maildir), "/path" (mbox). Forwards go out in one qmail-queue run
    /// after the local deliveries, as qmail-local does.
    func deliverToTargets(_ lines: [[UInt8]], base: String, quotaFor owner: Mailbox? = nil) throws {
        var forwards: [[UInt8]] = []
        lines: for line in lines {
            switch DotQmail.instruction(line) {
            case .comment, .blank, .ignored, .forwardOnly:
                continue
            case .program(let command):
                if try runProgram(command) { break lines }
            case .forward(let address):
                forwards.append(address)
            case .maildir(let raw), .mbox(let raw):
                var path = raw.string
                if raw.first == Ascii.dot { path = base + "/" + path }
                if path.hasSuffix("/") {
                    path.removeLast()
                    let own = owner.map { $0.maildir == path } ?? false
                    try deliverToMaildir(path, quota: own ? owner!.quota : .unlimited)
                } else {
                    let from = env("UFLINE") ?? Mbox.fromLine(sender: env("SENDER") ?? [], time: Sys.now())
                    try Mbox.deliver(path: Array(path.utf8), fromLine: from, header: headerLines, input: try message.rewound())
                }
            }
        }
        if !forwards.isEmpty { try forward(forwards) }
    }

    func deliverToMaildir(_ maildir: String, quota: Quota) throws {
        let size = headerLines.count + message.size
        // Deliveries to one mailbox run in parallel: without a lock two of
        // them could both see room for one message and both deliver.
        // Check, deliver and record under an exclusive lock on the Maildir,
        // held until this function returns (a defer inside the check's
        // block would let it go before the delivery).
        var lockFd: Int32 = -1
        defer { if lockFd >= 0 { Glibc.close(lockFd) } }
        if !quota.isUnlimited {
            lockFd = Glibc.open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if lockFd < 0 { throw MailFailure.temporary("unable to open \(maildir): \(Sys.strerror(errno))") }
            while flock(lockFd, LOCK_EX) != 0 {
                if errno != EINTR { throw MailFailure.temporary("unable to lock \(maildir): \(Sys.strerror(errno))") }
            }
            let fits: Bool
            do { fits = try MaildirSize.fits(maildir, quota: quota, size: size) } catch {
                throw MailFailure.temporary("unable to read the quota of \(maildir): \(error)")
            }
            if !fits {
                let defer_ = ((try? Control(home: home).line("voverquota")) ?? nil) == Array("defer".utf8)
                if defer_ { throw MailFailure.temporary("The mailbox is over its quota.", "4.2.2") }
                throw MailFailure.permanent("Sorry, the mailbox is over its quota.", "5.2.2")
            }
        }
        // qmail-local's Maildir writer: tmp/, fsync, link into new/, fsync new/.
        try Maildir.deliver(dir: Array(maildir.utf8), header: headerLines, input: try message.rewound())
        // Keep maildirsize right; a failure here only makes the next
        // check rebuild it.
        try? MaildirSize.record(maildir, bytes: size, count: 1)
    }

    /// Forwards with our Delivered-To line on top, through qmail-queue; the
    /// envelope sender unchanged, or rewritten by SRS for a remote target.
    func forward(_ targets: [[UInt8]]) throws {
        let sender = try SRSForwarding.sender(env("SENDER") ?? [], recipients: targets, home: home).get()
        let q: QueueClient
        do { q = try QueueClient(program: QueueClient.program(home: home, honourEnvironment: true)) } catch {
            throw MailFailure.temporary("unable to fork qmail-queue: \(error)")
        }
        let dt = Array(headerLines.drop { $0 != Ascii.lf }.dropFirst())
        q.put(dt)
        do { try message.reader().forEachChunk { q.put($0) } } catch { throw MailFailure.temporary("unable to read the message: \(error)") }
        q.from(sender)
        for t in targets { q.to(t) }
        if let f = q.close() { throw f }
    }

    /// Runs "|prog" with the message on stdin; true when it asked (exit
    /// 99) to skip the remaining lines. qmail-local's exit-code rules.
    func runProgram(_ command: [UInt8]) throws -> Bool {
        let fd = try message.rewound()
        let pid: pid_t
        do { pid = try ChildProcess.spawn(.init([Array("/bin/sh".utf8), Array("-c".utf8), command], program: "/bin/sh",
                                                fds: [.dup(fd, to: 0)])) } catch {
            throw MailFailure.temporary("\(error)")
        }
        let code = ChildProcess.wait(pid)?.shellCode ?? QmailExit.temporary
        switch code {
        case 0: return false
        case 99: return true
        case _ where QmailExit.permanentForProgram.contains(code):
            throw MailFailure.permanent("program \(command.string) refused the message (exit \(code))", "5.2.0")
        default:
            throw MailFailure.temporary("program \(command.string) failed (exit \(code))", "4.2.0")
        }
    }
}
