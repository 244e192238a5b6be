// qmailctl doctor: checks an installation against what qmail-setup makes
// and against the usual ways a qmail site goes wrong. Each finding is one
// line: "ok", "warning" (works, but look) or "PROBLEM" (mail is lost,
// refused, relayed or stuck). Exit: 0 all ok, 1 warnings, 2 problems,
// 111 cannot tell (home or ids unreadable).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import QmailSetup
import UserDirectory

struct Doctor {
    let ctl: QmailCtl
    var checkDNS = true
    var warnings = 0
    var problems = 0
    /// Owner/mode checks only: how many paths matched what qmail-setup sets.
    var goodPaths = 0

    init(ctl: QmailCtl) { self.ctl = ctl }

    var home: QmailHome { ctl.config.home }

    mutating func ok(_ s: String) { ctl.out("ok:      " + s) }
    mutating func warn(_ s: String) { warnings += 1; ctl.out("warning: " + s) }
    mutating func problem(_ s: String) { problems += 1; ctl.out("PROBLEM: " + s) }

    mutating func run() -> Int32 {
        guard Sys.exists("\(home.path)/ids"), let ids = try? QmailIds.load(home: home) else {
            ctl.out("cannot tell: \(home.path)/ids is missing or unreadable (not a qmail-setup home?)")
            return CtlExit.cannotTell
        }
        ctl.out("qmail home \(home.path) (\(ids.singleUser ? "single-user" : "multi-user"))")
        checkOwnership(ids)
        checkPrograms(ids)
        checkAccounts(ids)
        checkControls()
        checkRelayLogins(ids)
        checkDirectoryLogin(ids)
        checkDomainFiles()
        checkAssignOwners()
        let smtpd = smtpdInUse()
        checkRelay(smtpd: smtpd)
        checkCdbs()
        checkCertificate()
        checkCluster()
        if checkDNS { checkNames() }
        checkPorts()
        checkQueue()
        checkDeferred()
        ctl.out("doctor: \(problems) problem\(problems == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")
        return problems > 0 ? CtlExit.problem : (warnings > 0 ? CtlExit.warning : CtlExit.ok)
    }

    // MARK: owners and modes (Sources/QmailSetup/Setup.swift)

    struct Expect {
        let path: String
        let user: String?   // nil: the home's owner (root in multi-user mode)
        let mode: mode_t
        let type: mode_t
    }

    func expected() -> [Expect] {
        let h = home.path
        let q = "\(h)/queue"
        var e: [Expect] = [
            Expect(path: h, user: nil, mode: 0o755, type: S_IFDIR),
            Expect(path: "\(h)/alias", user: "alias", mode: 0o2755, type: S_IFDIR),
            Expect(path: q, user: "qmailq", mode: 0o750, type: S_IFDIR),
            Expect(path: "\(q)/pid", user: "qmailq", mode: 0o700, type: S_IFDIR),
            Expect(path: "\(q)/intd", user: "qmailq", mode: 0o700, type: S_IFDIR),
            Expect(path: "\(q)/todo", user: "qmailq", mode: 0o750, type: S_IFDIR),
            Expect(path: "\(q)/bounce", user: "qmails", mode: 0o700, type: S_IFDIR),
            Expect(path: "\(q)/lock", user: "qmailq", mode: 0o750, type: S_IFDIR),
            Expect(path: "\(q)/lock/tcpto", user: "qmailr", mode: 0o644, type: S_IFREG),
            Expect(path: "\(q)/lock/sendmutex", user: "qmails", mode: 0o600, type: S_IFREG),
            Expect(path: "\(q)/lock/trigger", user: "qmails", mode: 0o622, type: S_IFIFO),
        ]
        for d in ["control", "users", "bin", "boot"] {
            e.append(Expect(path: "\(h)/\(d)", user: nil, mode: 0o755, type: S_IFDIR))
        }
        for (d, u, m) in [("mess", "qmailq", 0o750), ("info", "qmails", 0o700),
                          ("local", "qmails", 0o700), ("remote", "qmails", 0o700)] as [(String, String, mode_t)] {
            e.append(Expect(path: "\(q)/\(d)", user: u, mode: m, type: S_IFDIR))
            for i in 0..<QueueLayout.split {
                e.append(Expect(path: "\(q)/\(d)/\(i)", user: u, mode: m, type: S_IFDIR))
            }
        }
        return e
    }

    func owner(_ ids: QmailIds, _ user: String?) -> uid_t {
        if let u = user { return ids.uid(u) ?? 0 }
        return ids.singleUser ? (ids.uid("qmailq") ?? 0) : 0
    }

    static func octal(_ m: mode_t) -> String { "0" + String(m & 0o7777, radix: 8) }

    static func userName(_ uid: uid_t) -> String {
        if let pw = getpwuid(uid) { return String(cString: pw.pointee.pw_name) }
        return String(uid)
    }

    mutating func checkOwnership(_ ids: QmailIds) {
        let group = ids.gid("qmail")
        var bad = 0
        for x in expected() {
            guard let st = try? Sys.lstat(x.path) else {
                problem("\(x.path) is missing (rerun qmail-setup)"); bad += 1; continue
            }
            if (st.st_mode & S_IFMT) != x.type {
                problem("\(x.path) has the wrong file type"); bad += 1; continue
            }
            let mode = st.st_mode & 0o7777
            let uid = owner(ids, x.user)
            if mode & 0o002 != 0 && x.mode & 0o002 == 0 {
                problem("\(x.path) is world-writable (mode \(Doctor.octal(mode)), qmail-setup sets \(Doctor.octal(x.mode))): chmod \(Doctor.octal(x.mode)) \(x.path)")
                bad += 1
            } else if mode != x.mode {
                // more open than qmail's mode is a risk; tighter may stop delivery
                let wider = (mode & ~x.mode) != 0
                let s = "\(x.path) has mode \(Doctor.octal(mode)), qmail-setup sets \(Doctor.octal(x.mode))"
                if x.path.hasPrefix(home.queue) || wider { problem(s) } else { warn(s) }
                bad += 1
            }
            if st.st_uid != uid {
                problem("\(x.path) belongs to \(Doctor.userName(st.st_uid)), qmail-setup sets \(Doctor.userName(uid)): chown \(Doctor.userName(uid)) \(x.path)")
                bad += 1
            } else if let g = group, st.st_gid != g, !ids.singleUser {
                warn("\(x.path) has group \(st.st_gid), qmail-setup sets qmail (\(g))")
                bad += 1
            }
        }
        if bad == 0 { ok("owners and modes of home, queue and alias as qmail-setup sets them") }
    }

    mutating func checkPrograms(_ ids: QmailIds) {
        var bad = 0
        let modes = Programs.modes(in: home.path + "/bin")
        for p in Programs.all {
            let path = home.bin(p.name)
            guard let st = try? Sys.stat(path) else { continue }
            var mode = modes[p.name] ?? p.mode
            var uid = owner(ids, nil)
            if p.name == "qmail-queue" { uid = ids.uid("qmailq") ?? 0 }
            if ids.singleUser && mode & 0o4000 != 0 { mode = 0o755 }
            let m = st.st_mode & 0o7777
            if m & 0o022 != 0 {
                problem("\(path) is writable by others (mode \(Doctor.octal(m))): chmod \(Doctor.octal(mode)) \(path)"); bad += 1
            } else if p.name == "qmail-queue" && !ids.singleUser && m & 0o4000 == 0 {
                problem("\(path) is not setuid qmailq (mode \(Doctor.octal(m))): only root can queue mail; chmod 4711 \(path)"); bad += 1
            } else if p.name == SRSHelper.program && !ids.singleUser && m & 0o4000 == 0 {
                problem("\(path) is not setuid root (mode \(Doctor.octal(m))): it cannot read control/srssecrets, so forwards defer while SRS is on; chmod 4711 \(path)"); bad += 1
            } else if m != mode {
                warn("\(path) has mode \(Doctor.octal(m)), qmail-setup sets \(Doctor.octal(mode))"); bad += 1
            }
            if st.st_uid != uid {
                problem("\(path) belongs to \(Doctor.userName(st.st_uid)), qmail-setup sets \(Doctor.userName(uid))"); bad += 1
            }
        }
        let needed = ["qmail-queue", "qmail-start", "qmail-send", "qmail-lspawn", "qmail-rspawn",
                      "qmail-clean", "qmail-local", "qmail-getpw"]
        for n in needed where !Sys.exists(home.bin(n)) {
            problem("\(home.bin(n)) is missing: mail cannot be queued or delivered"); bad += 1
        }
        if !Sys.exists(home.bin("qmail-remote")) { warn("\(home.bin("qmail-remote")) is missing: remote mail stays in the queue") }
        let rc = "\(home.path)/rc"
        if access(rc, X_OK) != 0 {
            problem("\(rc) is missing or not executable: qmailctl start and the send service cannot start qmail"); bad += 1
        }
        if !ids.singleUser {
            for u in QmailIds.users where getpwnam(u) == nil {
                problem("account \(u) is missing (HOME/ids names it): rerun qmail-setup"); bad += 1
            }
        }
        if bad == 0 { ok("programs in \(home.bin) have qmail's owners and modes; HOME/rc is in place") }
    }

    // MARK: control files

    mutating func checkControls() {
        let c = home.control
        if let st = try? Sys.stat(c), st.st_mode & 0o022 != 0 {
            problem("\(c) is writable by group or others (mode \(Doctor.octal(st.st_mode))): anyone could reroute mail")
        }
        var bad = 0
        if let names = try? Sys.listDirectory(c) {
            for n in names.sorted() {
                if let st = try? Sys.stat("\(c)/\(n)"), st.st_mode & 0o002 != 0 {
                    problem("\(c)/\(n) is world-writable: chmod 644 \(c)/\(n)"); bad += 1
                }
            }
        }
        let ctl = Control(home: home)
        if (try? ctl.line("me")) == nil {
            problem("control/me is missing or empty: qmail-send refuses to start"); bad += 1
        }
        if !Sys.exists(home.control("locals")) {
            warn("control/locals is missing: only control/me is delivered locally"); bad += 1
        }
        if !Sys.exists(home.control("defaultdelivery")) {
            warn("control/defaultdelivery is missing: HOME/rc starts qmail-start with an empty default delivery"); bad += 1
        }
        if let v = try? ctl.string("queuelifetime"), Int(v.trimmingSpaces()) == nil {
            warn("control/queuelifetime is not a number: \(v)"); bad += 1
        }
        if bad == 0 { ok("control files: me, locals, defaultdelivery present; none writable by others") }
    }

    /// Relay logins in smtproutes (qmail-remote's AUTH) make it a secret:
    /// readable by qmailr, by nobody else.
    mutating func checkRelayLogins(_ ids: QmailIds) {
        let path = home.control("smtproutes")
        guard let lines = try? Control(home: home).list("smtproutes"),
              lines.contains(where: { SMTPRoute.parse(line: $0)?.route.login != nil }),
              let st = try? Sys.stat(path), let qmailr = ids.uid("qmailr") else { return }
        let mode = st.st_mode & 0o777
        let fix = "chown \(Doctor.userName(qmailr)) \(path); chmod 600 \(path)"
        let qmailrReads = Doctor.reads(qmailr, st)
        if mode & 0o004 != 0 {
            problem("\(path) holds relay passwords and anyone on this machine can read it (mode \(Doctor.octal(mode))): \(fix)")
        } else if !qmailrReads {
            problem("\(path) holds relay passwords but qmail-remote (uid \(qmailr)) cannot read it: every remote delivery defers; \(fix)")
        } else if mode & 0o070 != 0 {
            warn("\(path) holds relay passwords and its group can read it (mode \(Doctor.octal(mode))): \(fix)")
        } else {
            ok("control/smtproutes: relay passwords readable by qmail-remote only")
        }
    }

    /// Whether `uid` may read a file with `st`'s owner and mode (its
    /// primary group and the groups that list it as a member count).
    static func reads(_ uid: uid_t, _ st: stat) -> Bool {
        let mode = st.st_mode & 0o777
        if uid == 0 { return true }  // a home run by root
        if st.st_uid == uid { return mode & 0o400 != 0 }
        if mode & 0o004 != 0 { return true }
        guard mode & 0o040 != 0, let pw = getpwuid(uid) else { return false }
        if pw.pointee.pw_gid == st.st_gid { return true }
        guard let gr = getgrgid(st.st_gid), var member = gr.pointee.gr_mem else { return false }
        let name = String(cString: pw.pointee.pw_name)
        while let m = member.pointee {
            if String(cString: m) == name { return true }
            member += 1
        }
        return false
    }

    /// With an LDAP or MySQL directory, qmail-smtpd's recipient check and
    /// its filter run as qmaild and read the same login file as
    /// vdelivermail (schemas/README.md): one qmaild cannot read makes every
    /// RCPT defer, and one that others can read is refused by them all.
    mutating func checkDirectoryLogin(_ ids: QmailIds) {
        guard let backend = try? DirectoryChoice.remoteBackend(home: home),
              let qmaild = ids.uid("qmaild") else { return }
        let name = backend == "ldap" ? "ldappassword" : "sqlpassword"
        let path = home.control(name)
        guard let st = try? Sys.stat(path) else {
            if backend == "mysql" { problem("\(path) is missing: every directory lookup defers (line 1 user, line 2 password)") }
            return  // LDAP binds anonymously without it
        }
        let mode = st.st_mode & 0o777
        if mode & 0o004 != 0 {
            problem("\(path) is readable by others (mode \(Doctor.octal(mode))), so every directory program refuses it and "
                    + "deliveries, logins and RCPT checks defer: chmod 640 \(path)")
        } else if !Doctor.reads(qmaild, st) {
            problem("\(path) is not readable by qmaild (uid \(qmaild)): qmail-smtpd's recipient check and filter defer "
                    + "every RCPT (451); give it a group that qmaild and the domains' account share, and mode 640")
        } else {
            ok("control/\(name): readable by qmail-smtpd's recipient check, not by others")
        }
    }

    // MARK: relaying

    func smtpdInUse() -> Bool {
        if ctl.services.directory(.smtpd) != nil { return true }
        let scan = ProcScan.all()
        if ctl.services.state(.smtpd, procs: scan.entries).up { return true }
        return ctl.config.smtpRules.contains { Sys.exists($0) }
    }

    mutating func checkRelay(smtpd: Bool) {
        let path = home.control("rcpthosts")
        let data = (try? FileIO.read(path)) ?? nil
        if data == nil {
            let s = "control/rcpthosts is missing: qmail-smtpd accepts mail for every domain (an open relay)"
            if smtpd { problem(s) } else { warn(s + "; harmless while qmail-smtpd is not running") }
        } else if Control.parseList(data!).isEmpty {
            let s = "control/rcpthosts is empty: qmail-smtpd refuses every recipient"
            if smtpd { problem(s) } else { warn(s) }
        } else {
            ok("control/rcpthosts lists \(Control.parseList(data!).count) host(s)")
        }
        checkPercentHack()
        for f in ctl.config.smtpRules {
            guard let t = try? FileIO.read(f) else { continue }
            var n = 0
            for raw in t.split(separator: Ascii.lf) {
                n += 1
                let line = String(decoding: raw, as: UTF8.self).trimmingSpaces()
                if line.hasPrefix("#") || line.isEmpty { continue }
                guard let colon = line.firstIndex(of: ":") else { continue }
                let addr = String(line[..<colon]).trimmingSpaces()
                let rest = line[line.index(after: colon)...]
                let everybody = addr.isEmpty || addr == "0.0.0.0/0" || addr == "::/0"
                if everybody && rest.hasPrefix("allow") && rest.contains("RELAYCLIENT") {
                    problem("\(f) line \(n) grants RELAYCLIENT to every client: an open relay (\(line))")
                }
            }
        }
    }

    /// percenthack lets mail to user%host@domain go on to user@host: say
    /// for which domains, and on what terms qmail-smtpd takes it.
    mutating func checkPercentHack() {
        guard let hack = try? Control(home: home).list("percenthack"), !hack.isEmpty else { return }
        let names = hack.prefix(5).map { $0.string }.joined(separator: ", ") + (hack.count > 5 ? ", ..." : "")
        ok("control/percenthack lists \(hack.count) domain(s) (\(names)): qmail-send delivers user%host@DOMAIN "
           + "to user@host, one % at a time; qmail-smtpd takes such a recipient only when the host it ends at "
           + "is in rcpthosts, or from a client that may relay (RELAYCLIENT, AUTH)")
    }

    // MARK: cdbs up to date

    mutating func checkCdbs() {
        var pairs: [(String, String)] = (ctl.config.smtpRules + ctl.config.pop3Rules + ctl.config.otherRules).map { ($0, "\($0).cdb") }
        pairs.append(("\(home.users)/assign", "\(home.users)/cdb"))
        pairs.append((home.control("morercpthosts"), home.control("morercpthosts.cdb")))
        // the aliases matter only where fastforward reads them
        let ff = fastforwardAliases()
        if let ff { pairs.append(ff) }
        var bad = 0
        for (src, cdb) in pairs {
            guard let s = try? Sys.stat(src) else {
                if cdb == ff?.cdb && !Sys.exists(cdb) {
                    warn("fastforward reads \(cdb), which is missing: write \(src) and run newaliases"); bad += 1
                }
                continue
            }
            guard let c = try? Sys.stat(cdb) else {
                warn("\(cdb) is missing: run qmailctl cdb"); bad += 1; continue
            }
            if s.st_mtim.tv_sec > c.st_mtim.tv_sec {
                warn("\(src) is newer than \(cdb): run qmailctl cdb"); bad += 1
            }
        }
        if bad == 0 { ok("cdb files are up to date") }
    }

    // MARK: certificate

    mutating func checkCertificate() {
        let cert = home.control("servercert.pem")
        guard Sys.exists(cert) else { ok("no control/servercert.pem (no TLS services)"); return }
        checkKeyFileModes()
        let end = Run.capture(["openssl", "x509", "-enddate", "-noout", "-in", cert])
        guard end.status == 0 else {
            if end.status == nil { warn("cannot check \(cert): openssl not found") }
            else { problem("\(cert) is not a readable PEM certificate") }
            return
        }
        let date = end.output.split(separator: "=", maxSplits: 1).last.map { String($0).trimmingSpaces() } ?? "?"
        if Run.capture(["openssl", "x509", "-checkend", "0", "-noout", "-in", cert]).status != 0 {
            problem("\(cert) expired on \(date)")
        } else if Run.capture(["openssl", "x509", "-checkend", "2592000", "-noout", "-in", cert]).status != 0 {
            warn("\(cert) expires within 30 days (\(date))")
        } else {
            ok("\(cert) valid until \(date)")
        }
    }

    /// The private key (in servercert.pem, or serverkey.pem) must not be
    /// readable by others, nor its file writable by group or others: anyone
    /// with the key can impersonate the server.
    /// A cluster without control/clustersecret routes, but anybody can
    /// forge its loop markers; the secret itself must stay unreadable.
    mutating func checkCluster() {
        let control = Control(home: home)
        if let w = ClusterSecretCheck.warning(home: home, control: control) {
            warn(w + ": put the same random line in control/clustersecret on every host")
            return
        }
        let path = home.control("clustersecret")
        guard ClusterSecretCheck.clusterSign(home: home, control: control) != nil else { return }
        if let st = try? Sys.stat(path), st.st_mode & 0o004 != 0 {
            problem("\(path) is readable by others (mode \(Doctor.octal(st.st_mode & 0o7777))): chmod 640 \(path)")
        } else {
            ok("cluster loop markers are signed (control/clustersecret)")
        }
    }

    mutating func checkKeyFileModes() {
        for name in ["servercert.pem", "serverkey.pem"] {
            let path = home.control(name)
            guard let st = try? Sys.stat(path) else { continue }
            let m = st.st_mode & 0o7777
            let holdsKey = ((try? FileIO.read(path, limit: 1 << 20)) ?? nil).map { containsKey($0) } ?? true
            if m & 0o022 != 0 {
                problem("\(path) is writable by group or others (mode \(Doctor.octal(m))): chmod 600 \(path)")
            } else if holdsKey && m & 0o004 != 0 {
                problem("\(path) holds the private key and is readable by others (mode \(Doctor.octal(m))): chmod 600 \(path)")
            }
        }
    }

    func containsKey(_ data: [UInt8]) -> Bool {
        let needle = Array("PRIVATE KEY-----".utf8)
        guard data.count >= needle.count else { return false }
        for i in 0...(data.count - needle.count) where data[i] == needle[0] {
            if Array(data[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }

    // MARK: names

    mutating func checkNames() {
        let c = Control(home: home)
        guard let meBytes = try? c.line("me") else { return }
        let me = meBytes.string
        var names = [("me", me)]
        if let h = try? c.line("helohost") { names.append(("helohost", h.string)) }
        for (file, name) in names {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var res: UnsafeMutablePointer<addrinfo>? = nil
            let rc = getaddrinfo(name, nil, &hints, &res)
            if rc == 0 {
                freeaddrinfo(res)
                ok("control/\(file) \(name) resolves")
            } else if let tld = name.lowercased().split(separator: ".").last, ["test", "example", "localhost"].contains(String(tld)) {
                // A name under the test TLDs of RFC 2606/6761 (the run
                // command's mail.example.test) is not meant to resolve.
                ok("control/\(file) \(name) is a test name (RFC 6761): fine for a test or loopback-only home, not for mail to other hosts")
            } else {
                warn("control/\(file) \(name) does not resolve (\(String(cString: gai_strerror(rc)))): other hosts may refuse its mail")
            }
        }
    }

    // MARK: queue

    mutating func checkQueue() {
        let scan = QueueScan(root: home.queue)
        guard let todo = try? scan.ids(inFlat: "todo"), let mess = try? scan.ids(inSplit: "mess") else {
            problem("cannot read the queue \(home.queue)"); return
        }
        let send = ctl.services.state(.send, procs: ProcScan.all().entries)
        if !send.up { warn("qmail-send is not running: nothing is delivered (qmailctl start)") }
        if todo.count > 100 {
            warn("\(todo.count) messages wait in queue/todo: qmail-send is \(send.up ? "behind" : "not running")")
        }
        let lifetime = (try? Control(home: home).number("queuelifetime", default: 604800)) ?? 604800
        let now = Sys.now()
        var oldest = now
        var old = 0
        for id in mess {
            guard let st = try? Sys.stat(scan.layout.mess(id)) else { continue }
            let t = Int(st.st_mtim.tv_sec)
            oldest = min(oldest, t)
            if now - t > lifetime + 86400 { old += 1 }
        }
        if old > 0 {
            warn("\(old) message(s) stayed longer than queuelifetime + 1 day: is qmail-send processing the queue?")
        }
        let age = mess.isEmpty ? "" : ", oldest \((now - oldest) / 3600) hours"
        ok("queue: \(mess.count) messages, \(todo.count) not yet preprocessed\(age)")
    }
}
