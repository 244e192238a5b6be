// qmail-setup: creates a complete qmail home, as qmail's `make setup`
// followed by `config-fast` would.
//
// Run by root (without --single-user) it creates qmail's accounts when
// missing (an existing account must have this home: see staleAccounts) and gives every directory and program qmail's owner and mode,
// including the setuid qmailq bit on qmail-queue. Run by anyone else, or
// with --single-user, it makes a home in which every component runs as one
// user: for development and tests.
//
// It never overwrites control files, aliases or boot scripts that already
// exist, so running it again on a live home only refreshes programs,
// directories and modes.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import QmailForward

public struct SetupOptions {
    public var home: String
    public var fqdn: String
    public var singleUser: Bool
    /// Directory holding the built programs to install.
    public var programDirectory: String
    /// Default delivery written to control/defaultdelivery.
    public var defaultDelivery: String = "./Maildir/"
    /// Single-user mode: the account every component runs as (default: the
    /// caller). Lets root prepare a home for an unprivileged user.
    public var owner: (uid: uid_t, gid: gid_t)? = nil
    /// Single-user mode only: hard-link the programs instead of copying
    /// them (test suites make hundreds of homes). Never in a multi-user
    /// home, where owners and the setuid bit would land on the build's files;
    /// only programs already owned by the home's owner are linked, and they
    /// keep the build's modes (the others are copied).
    public var link = false
    /// Put fastforward (/etc/aliases) and dot-forward (~/.forward) in place.
    public var sendmail = false
    public var aliasesFile = "/etc/aliases"
    /// Directory of man pages (NAME.1 ... NAME.8) to install into HOME/man;
    /// nil: none (qmail-setup logs that it skipped them).
    public var manDirectory: String? = nil

    public init(home: String, fqdn: String, singleUser: Bool, programDirectory: String) {
        self.home = home
        self.fqdn = fqdn
        self.singleUser = singleUser
        self.programDirectory = programDirectory
    }
}

public struct SetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ s: String) { description = s }
}

public final class Setup {
    let o: SetupOptions
    var ids: QmailIds
    /// Root's uid/gid in multi-user mode; the single user otherwise.
    var ownerUid: uid_t
    var ownerGid: gid_t
    var log: (String) -> Void

    public init(_ options: SetupOptions, log: @escaping (String) -> Void) {
        o = options
        let me = options.owner ?? (uid: geteuid(), gid: getegid())
        ids = .single(uid: me.uid, gid: me.gid)
        ownerUid = me.uid
        ownerGid = me.gid
        self.log = log
    }

    public func run() throws {
        try validate()
        if !o.singleUser {
            try createAccounts()
            ownerUid = 0
            ownerGid = ids.gid("qmail")!
        }
        let q = ids.gid("qmail")!
        let u = { (n: String) in self.ids.uid(n)! }

        try makeParents(o.home)
        try dir(o.home, ownerUid, q, 0o755)
        for d in ["control", "users", "bin", "boot", "doc", "man"] {
            try dir("\(o.home)/\(d)", ownerUid, q, 0o755)
        }
        try dir("\(o.home)/alias", u("alias"), q, 0o2755)
        // qmail-smtpd's greylist state and qmail-filter's quarantine: qmaild's alone.
        try dir("\(o.home)/greylist", u("qmaild"), q, 0o700)
        try dir("\(o.home)/quarantine", u("qmaild"), q, 0o700)

        let queue = "\(o.home)/queue"
        try dir(queue, u("qmailq"), q, 0o750)
        try dir("\(queue)/pid", u("qmailq"), q, 0o700)
        try dir("\(queue)/intd", u("qmailq"), q, 0o700)
        try dir("\(queue)/todo", u("qmailq"), q, 0o750)
        try dir("\(queue)/bounce", u("qmails"), q, 0o700)
        try splitDir("\(queue)/mess", u("qmailq"), q, 0o750)
        try splitDir("\(queue)/info", u("qmails"), q, 0o700)
        try splitDir("\(queue)/local", u("qmails"), q, 0o700)
        try splitDir("\(queue)/remote", u("qmails"), q, 0o700)
        try dir("\(queue)/lock", u("qmailq"), q, 0o750)
        try zeroFile("\(queue)/lock/tcpto", size: 1024, u("qmailr"), q, 0o644)
        try zeroFile("\(queue)/lock/sendmutex", size: 0, u("qmails"), q, 0o600)
        try fifo("\(queue)/lock/trigger", u("qmails"), q, 0o622)

        try FileIO.writeAtomic("\(o.home)/ids", Array(ids.render().utf8), mode: 0o644)
        try own("\(o.home)/ids", ownerUid, ownerGid, 0o644)

        try installPrograms(q)
        try installManPages()
        try writeControls()
        try writeAliases(q)
        try writeBootScripts()
        if o.sendmail {
            let owner = (uid: ids.uid("alias")!, gid: o.singleUser ? ownerGid : ids.gid("nofiles")!)
            do {
                for line in try SendmailMigration.install(home: QmailHome(path: o.home), aliases: o.aliasesFile, owner: owner) {
                    log(line)
                }
            } catch let e as ForwardFatal {
                throw SetupError("sendmail migration: \(e.message)")
            }
        }
        log("qmail home ready at \(o.home) (\(o.singleUser ? "single-user: everything runs as uid \(ownerUid)" : "multi-user"))")
    }

    // MARK: checks

    func validate() throws {
        guard o.home.hasPrefix("/") else { throw SetupError("home must be an absolute path: \(o.home)") }
        guard !o.home.contains("\n"), !o.home.contains(" ") else { throw SetupError("home must not contain spaces or newlines") }
        guard Setup.isValidHostname(o.fqdn) else { throw SetupError("not a valid host name: \(o.fqdn)") }
        if !o.singleUser && geteuid() != 0 {
            throw SetupError("a multi-user home needs root; use --single-user")
        }
        if let owner = o.owner {
            if !o.singleUser { throw SetupError("--owner goes with --single-user") }
            if geteuid() != 0 && owner.uid != geteuid() { throw SetupError("only root can make a home for another user") }
        }
    }

    public static func isValidHostname(_ h: String) -> Bool {
        let b = Array(h.utf8)
        if b.isEmpty || b.count > 253 { return false }
        for label in b.split(separator: Ascii.dot, omittingEmptySubsequences: false) {
            if label.isEmpty || label.count > 63 { return false }
            for c in label {
                let ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || Ascii.isDigit(c) || c == Ascii.minus
                if !ok { return false }
            }
        }
        return true
    }

    // MARK: accounts

    static let accountGroups: [String: String] = [
        "alias": "nofiles", "qmaild": "nofiles", "qmaill": "nofiles", "qmailp": "nofiles",
        "qmailq": "qmail", "qmailr": "qmail", "qmails": "qmail",
    ]

    /// The home directory qmail's account `user` has in the installation at
    /// `home` (qmail's INSTALL.ids): alias's is HOME/alias, where
    /// qmail-lspawn takes it from passwd to deliver mail for postmaster, root
    /// and unknown local users; the others' is HOME itself.
    public static func accountHome(_ user: String, home: String) -> String {
        user == "alias" ? "\(home)/alias" : home
    }

    /// Does an account's home `actual` fit `wanted`: the same path (trailing
    /// slashes aside) or the same existing directory under another name.
    public static func homeFits(_ actual: String, _ wanted: String) -> Bool {
        func trim(_ s: String) -> String { var t = s; while t.count > 1 && t.hasSuffix("/") { t.removeLast() }; return t }
        if trim(actual) == trim(wanted) { return true }
        guard let a = try? Sys.stat(actual), let w = try? Sys.stat(wanted) else { return false }
        return a.st_dev == w.st_dev && a.st_ino == w.st_ino
    }

    /// The home directory passwd gives `user`, nil when there is no such account.
    public static func passwdHome(_ user: String) -> (uid: uid_t, home: String)? {
        guard let pw = getpwnam(user) else { return nil }
        return (pw.pointee.pw_uid, String(cString: pw.pointee.pw_dir))
    }

    /// Existing accounts whose homes do not fit this home. A home that no
    /// longer exists is left over from a removed installation: such accounts
    /// are moved here (usermod -d). A home that exists belongs to another
    /// qmail installation still on disk: qmail's accounts serve one home, so
    /// qmail-setup refuses before it changes anything and says what to do.
    func staleAccounts() throws -> [(user: String, old: String)] {
        var stale: [(user: String, old: String)] = []
        for user in QmailIds.users {
            guard let pw = Setup.passwdHome(user) else { continue }
            let want = Setup.accountHome(user, home: o.home)
            if Setup.homeFits(pw.home, want) { continue }
            if Sys.exists(pw.home) {
                throw SetupError("account \(user) has home \(pw.home), not \(want), and \(pw.home) exists (another qmail installation?): "
                                 + "qmail's accounts serve one home; if that one is retired run `usermod -d \(want) \(user)` "
                                 + "for each such account and rerun, else give this home --single-user")
            }
            stale.append((user, pw.home))
        }
        return stale
    }

    func createAccounts() throws {
        let stale = try staleAccounts()
        var gids: [String: gid_t] = [:]
        for g in QmailIds.groups {
            if getgrnam(g) == nil {
                log("creating group \(g)")
                guard ChildProcess.run(.init(["groupadd", "-r", g])) == .exited(0) else { throw SetupError("groupadd \(g) failed") }
            }
            guard let gr = getgrnam(g) else { throw SetupError("group \(g) missing after groupadd") }
            gids[g] = gr.pointee.gr_gid
        }
        for (user, old) in stale {
            let want = Setup.accountHome(user, home: o.home)
            log("account \(user): home \(old) no longer exists; moving it to \(want)")
            guard ChildProcess.run(.init(["usermod", "-d", want, user])) == .exited(0) else { throw SetupError("usermod -d \(want) \(user) failed") }
        }
        var uids: [String: uid_t] = [:]
        for user in QmailIds.users {
            if getpwnam(user) == nil {
                log("creating user \(user)")
                let argv = ["useradd", "-r", "-g", Setup.accountGroups[user]!, "-d", Setup.accountHome(user, home: o.home), "-M",
                            "-s", Sys.exists("/usr/sbin/nologin") ? "/usr/sbin/nologin" : "/bin/false", user]
                guard ChildProcess.run(.init(argv)) == .exited(0) else { throw SetupError("useradd \(user) failed") }
            }
            guard let pw = getpwnam(user) else { throw SetupError("user \(user) missing after useradd") }
            uids[user] = pw.pointee.pw_uid
        }
        ids = QmailIds(singleUser: false, uid: uids, gid: gids)
    }

    // MARK: files

    func own(_ path: String, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws {
        if geteuid() == 0 || uid == geteuid() {
            if lchown(path, uid, gid) != 0 && geteuid() == 0 { throw SysError("chown", path: path) }
        }
        if chmod(path, mode) != 0 { throw SysError("chmod", path: path) }
    }

    func dir(_ path: String, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws {
        if !Sys.isDirectory(path) {
            if Sys.exists(path) { throw SetupError("\(path) exists and is not a directory") }
            try Sys.mkdir(path, 0o700)
        }
        try own(path, uid, gid, mode)
    }

    /// Creates the missing parents of `path` (root- or user-owned, 0755).
    func makeParents(_ path: String) throws {
        let parent = FileIO.directoryOf(path)
        if parent == "/" || Sys.isDirectory(parent) { return }
        try makeParents(parent)
        if Glibc.mkdir(parent, 0o755) != 0 && errno != EEXIST { throw SysError("mkdir", path: parent) }
    }

    func splitDir(_ path: String, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws {
        try dir(path, uid, gid, mode)
        for i in 0..<QueueLayout.split { try dir("\(path)/\(i)", uid, gid, mode) }
    }

    func zeroFile(_ path: String, size: Int, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws {
        if !Sys.exists(path) {
            let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            defer { Sys.close(fd) }
            if size > 0 { try Sys.writeAll(fd, [UInt8](repeating: 0, count: size)) }
            try Sys.fsync(fd)
        }
        try own(path, uid, gid, mode)
    }

    func fifo(_ path: String, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws {
        if let st = try? Sys.lstat(path), (st.st_mode & S_IFMT) != S_IFIFO {
            try Sys.unlink(path)
        }
        if !Sys.exists(path) {
            guard mkfifo(path, 0o600) == 0 else { throw SysError("mkfifo", path: path) }
        }
        try own(path, uid, gid, mode)
    }

    /// Writes `text` unless the file already exists (an administrator's file is never replaced).
    @discardableResult
    func writeIfMissing(_ path: String, _ text: String, _ uid: uid_t, _ gid: gid_t, _ mode: mode_t) throws -> Bool {
        if Sys.exists(path) { return false }
        try FileIO.writeAtomic(path, Array(text.utf8), mode: mode)
        try own(path, uid, gid, mode)
        return true
    }

    // MARK: programs

    /// Programs that share a multi-call file (QmailCore/MultiCall.swift)
    /// share one installed copy too: the first name is copied, the others
    /// are hard links to it, and the copy has the union of their modes. A
    /// setuid program never shares its file (Package.swift gives it its own).
    func installPrograms(_ q: gid_t) throws {
        typealias FileID = Programs.FileID
        var found: [(p: ProgramEntry, src: String, st: stat, id: FileID)] = []
        for p in Programs.all {
            let src = "\(o.programDirectory)/\(p.name)"
            guard let st = try? Sys.stat(src) else { continue }
            found.append((p, src, st, FileID(st)))
        }
        let modes = Programs.modes(in: o.programDirectory)
        var names: [FileID: [String]] = [:]
        for f in found { names[f.id, default: []].append(f.p.name) }
        if let f = found.first(where: { $0.p.mode & 0o6000 != 0 && names[$0.id]!.count > 1 }) {
            throw SetupError("\(f.src) is setuid \(f.p.name) and also \(names[f.id]!.filter { $0 != f.p.name }.joined(separator: ", ")): rebuild")
        }
        var copied: [FileID: String] = [:]
        for f in found {
            let dst = "\(o.home)/bin/\(f.p.name)"
            var uid = ownerUid
            var mode = modes[f.p.name]!
            if f.p.name == "qmail-queue" { uid = ids.uid("qmailq")! }
            if o.singleUser && mode & 0o4000 != 0 { mode = 0o755 }
            let gid = o.singleUser ? ownerGid : q
            // A hard link shares the build's inode: chown or chmod on it would
            // change the build's file (and every other home linked to it). So
            // link only what already has the home's owner, and leave its mode.
            // (The build names programs with symbolic links: link their target.)
            if o.link && o.singleUser, f.st.st_uid == uid, f.st.st_gid == gid {
                _ = Glibc.unlink(dst)
                if linkat(AT_FDCWD, f.src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0 { continue }
            }
            if let first = copied[f.id] {
                try replace(dst, withLinkTo: first)
                continue
            }
            try copyFile(f.src, dst)
            try own(dst, uid, gid, mode)
            copied[f.id] = dst
        }
        guard !found.isEmpty else { throw SetupError("no programs found in \(o.programDirectory); build them first (swift build -c release, then scripts/link-programs.sh)") }
        log("installed \(found.count) programs in \(o.home)/bin (\(names.count) files)")
    }

    /// Makes `dst` a hard link to `target` through a temporary name, so a
    /// running system never finds `dst` missing.
    func replace(_ dst: String, withLinkTo target: String) throws {
        let tmp = "\(dst).new"
        _ = Glibc.unlink(tmp)
        if Glibc.link(target, tmp) != 0 { throw SysError("link", path: tmp) }
        do { try Sys.rename(tmp, dst) } catch { _ = Glibc.unlink(tmp); throw error }
    }

    /// Copies NAME.N from the man directory into HOME/man/manN/ (0644).
    func installManPages() throws {
        guard let src = o.manDirectory, Sys.isDirectory(src) else {
            log("no man pages found (--man DIR); skipped HOME/man")
            return
        }
        var installed = 0
        for name in try Sys.listDirectory(src).sorted() {
            let b = Array(name.utf8)
            guard b.count > 2, b[b.count - 2] == UInt8(ascii: "."), b.first != UInt8(ascii: "."),
                  (UInt8(ascii: "1")...UInt8(ascii: "8")).contains(b[b.count - 1]) else { continue }
            let section = "man" + String(UnicodeScalar(b[b.count - 1]))
            try dir("\(o.home)/man/\(section)", ownerUid, ownerGid, 0o755)
            let dst = "\(o.home)/man/\(section)/\(name)"
            try copyFile("\(src)/\(name)", dst)
            try own(dst, ownerUid, ownerGid, 0o644)
            installed += 1
        }
        log("installed \(installed) man pages in \(o.home)/man")
    }

    /// Copies through a temporary name and renames, so a running system never
    /// executes a half-written program.
    func copyFile(_ src: String, _ dst: String) throws {
        let tmp = "\(dst).new"
        let input = try Sys.open(src, O_RDONLY)
        defer { Sys.close(input) }
        _ = Glibc.unlink(tmp)
        let out = try Sys.open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o700)
        do {
            let w = ByteWriter(fd: out, capacity: 1 << 20)
            try ByteReader(fd: input, capacity: 1 << 20).forEachChunk { try w.put($0) }
            try w.flush()
            try Sys.fsync(out)
            Sys.close(out)
            try Sys.rename(tmp, dst)
        } catch {
            Sys.close(out)
            _ = Glibc.unlink(tmp)
            throw error
        }
    }

    // MARK: configuration

    /// config-fast's rule: defaultdomain and plusdomain are the last two labels.
    public static func parentDomain(_ fqdn: String) -> String {
        let labels = fqdn.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count <= 2 { return fqdn }
        return labels.suffix(2).joined(separator: ".")
    }

    func writeControls() throws {
        let c = "\(o.home)/control"
        let g = ownerGid
        let fresh = try writeIfMissing("\(c)/me", o.fqdn + "\n", ownerUid, g, 0o644)
        // A new installation annotates incoming mail with SPF, DKIM and
        // DMARC results; a home set up before (control/me was there) keeps
        // qmail's behaviour, no checks, until its admin writes the file.
        if fresh { try writeIfMissing("\(c)/authpolicy", "annotate\n", ownerUid, g, 0o644) }
        let parent = Setup.parentDomain(o.fqdn)
        try writeIfMissing("\(c)/defaultdomain", parent + "\n", ownerUid, g, 0o644)
        try writeIfMissing("\(c)/plusdomain", parent + "\n", ownerUid, g, 0o644)
        try writeIfMissing("\(c)/locals", "localhost\n" + o.fqdn + "\n", ownerUid, g, 0o644)
        try writeIfMissing("\(c)/rcpthosts", o.fqdn + "\n", ownerUid, g, 0o644)
        try writeIfMissing("\(c)/defaultdelivery", o.defaultDelivery + "\n", ownerUid, g, 0o644)
        // SRS's secret, for qmail-srs alone (root, 0600); SRS stays off
        // until control/srsdomain names a domain.
        if !Sys.exists("\(c)/\(SRSHelper.secretsFile)") {
            guard let secret = Setup.randomSecret() else { throw SetupError("unable to read /dev/urandom") }
            try writeIfMissing("\(c)/\(SRSHelper.secretsFile)", secret + "\n", ownerUid, ownerGid, 0o600)
        }
    }

    /// 24 random bytes in base64 (32 characters, no newline or '#').
    static func randomSecret() -> String? {
        guard let fd = try? Sys.open("/dev/urandom", O_RDONLY) else { return nil }
        defer { Sys.close(fd) }
        var b = [UInt8](repeating: 0, count: 24)
        guard (try? Sys.read(fd, &b, b.count)) == b.count else { return nil }
        return Base64.encode(b).string
    }

    func writeAliases(_ q: gid_t) throws {
        let a = "\(o.home)/alias"
        let uid = ids.uid("alias")!
        let gid = o.singleUser ? ownerGid : ids.gid("nofiles")!
        for name in ["postmaster", "mailer-daemon", "root"] {
            let text = "# Mail for \(name) goes to the alias Maildir; replace with &person@domain to forward.\n./Maildir/\n"
            try writeIfMissing("\(a)/.qmail-\(name)", text, uid, gid, 0o644)
        }
        // Bounces to the SRS domain (virtualdomains: SRSDOMAIN:alias-srs) go
        // back to their senders. In a single-user home qmail-getpw gives
        // alias the whole local part as its extension.
        let srs = o.singleUser ? ".qmail-alias-srs-default" : ".qmail-srs-default"
        try writeIfMissing("\(a)/\(srs)", "|\(o.home)/bin/srsreverse\n", uid, gid, 0o644)
        let md = "\(a)/Maildir"
        for d in [md, "\(md)/tmp", "\(md)/new", "\(md)/cur"] { try dir(d, uid, gid, 0o700) }
    }

    /// The boot scripts: qmail's, plus maildir and maildir+df.
    static let bootDeliveries: [(name: String, delivery: String)] = [
        ("home", "./Mailbox"),
        ("home+df", "|dot-forward .forward\n./Mailbox"),
        ("proc", "|preline procmail"),
        ("proc+df", "|dot-forward .forward\n|preline procmail"),
        ("binm1", "|preline -f /usr/libexec/mail.local -r \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("binm1+df", "|dot-forward .forward\n|preline -f /usr/libexec/mail.local -r \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("binm2", "|preline -f /bin/mail -r \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("binm2+df", "|dot-forward .forward\n|preline -f /bin/mail -r \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("binm3", "|preline -f /bin/mail -f \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("binm3+df", "|dot-forward .forward\n|preline -f /bin/mail -f \"${SENDER:-MAILER-DAEMON}\" -d \"$USER\""),
        ("maildir", "./Maildir/"),
        ("maildir+df", "|dot-forward .forward\n./Maildir/"),
    ]

    /// Single-quotes for sh.
    static func shQuote(_ s: String) -> String {
        "'" + s.replacing("'", with: "'\\''") + "'"
    }

    func envLine() -> String {
        "exec env - PATH=\"\(o.home)/bin:$PATH\" QMAIL_HOME=\(o.home)"
    }

    func writeBootScripts() throws {
        for b in Setup.bootDeliveries {
            let text = """
            #!/bin/sh
            # Starts qmail with this default delivery for users without a .qmail:
            #   \(b.delivery.replacing("\n", with: "\n#   "))
            # The log goes through splogger to syslog (facility mail).
            \(envLine()) \\
            qmail-start \(Setup.shQuote(b.delivery)) splogger qmail

            """
            try writeIfMissing("\(o.home)/boot/\(b.name)", text, ownerUid, ownerGid, 0o755)
        }
        let rc = """
        #!/bin/sh
        # Starts qmail-send and its helpers with the default delivery in
        # control/defaultdelivery. The log goes to standard output, ready
        # for multilog or any other logger.
        \(envLine()) \\
        qmail-start "`cat \(o.home)/control/defaultdelivery`"

        """
        try writeIfMissing("\(o.home)/rc", rc, ownerUid, ownerGid, 0o755)
    }
}

