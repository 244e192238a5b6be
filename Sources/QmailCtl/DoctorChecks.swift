// qmailctl doctor, the checks of what breaks on a machine the home shares:
// qmail's accounts, the owners users/assign promises, the domain files, the
// ports in HOME/ports and the reasons deferred mail waits.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import QmailLocal
import QmailSetup
import UserDirectory

extension Doctor {
    // MARK: accounts

    /// In a multi-user home qmail-lspawn takes alias's home from passwd:
    /// an account left by another installation sends every message for
    /// postmaster, root and unknown local users into endless deferral.
    mutating func checkAccounts(_ ids: QmailIds) {
        guard !ids.singleUser else { return }
        var bad = 0
        for user in QmailIds.users {
            guard let pw = Setup.passwdHome(user) else { continue }  // checkPrograms reports it
            if let want = ids.uid(user), want != pw.uid {
                problem("account \(user) has uid \(pw.uid), HOME/ids says \(want): files qmail-setup made belong to a former account; rerun qmail-setup")
                bad += 1
            }
            let want = Setup.accountHome(user, home: home.path)
            guard !Setup.homeFits(pw.home, want) else { continue }
            let fix = "usermod -d \(want) \(user)"
            if user == "alias" {
                problem("account alias has home \(pw.home), not \(want): mail for postmaster, root and unknown local users defers; \(fix)")
            } else {
                warn("account \(user) has home \(pw.home), not \(home.path) (another installation's?): \(fix)")
            }
            bad += 1
        }
        if bad == 0 { ok("qmail's accounts have this home's uids and home directories") }
    }

    // MARK: owners users/assign promises

    /// qmail-local runs as the uid users/assign (or users/vdomains) names
    /// and must write into the directory: one owned by someone else defers
    /// every delivery to it.
    mutating func checkAssignOwners() {
        var dirs: [(dir: String, uid: uid_t, what: String)] = []
        var assignKeys = Set<[UInt8]>()
        if let data = try? FileIO.read("\(home.users)/assign") {
            do {
                for r in try UsersAssign.records(data) where !r.key.isEmpty {
                    assignKeys.insert(r.key)
                    let f = r.data.split(separator: 0, omittingEmptySubsequences: false)
                    guard f.count >= 4, let uid = Decimal.parse(Array(f[1])), uid <= Int(UInt32.max) else {
                        problem("users/assign: \(Array(r.key.dropFirst()).string) has no numeric uid"); continue
                    }
                    dirs.append((Array(f[3]).string, uid_t(uid), "users/assign \(Array(r.key.dropFirst()).string.trimmingNul())"))
                }
            } catch {
                problem("\(error): qmail-newu refuses it and users/cdb stays old")
            }
        }
        for d in fileDomains() where !d.isAlias {
            dirs.append((d.dir, d.uid, "users/vdomains \(d.name.string)"))
            if Sys.exists("\(home.users)/assign") && !assignKeys.contains([UInt8(ascii: "!")] + d.name.map(Ascii.lower) + [Ascii.minus]) {
                problem("domain \(d.name.string) is in users/vdomains but has no +\(d.name.string)- line in users/assign: its mail bounces")
            }
        }
        var seen = Set<String>()
        var bad = 0
        for (dir, uid, what) in dirs where seen.insert("\(dir):\(uid)").inserted {
            guard let st = try? Sys.stat(dir) else {
                problem("\(what): \(dir) does not exist: deliveries to it defer"); bad += 1; continue
            }
            if st.st_uid != uid {
                problem("\(what) runs as uid \(uid) but \(dir) belongs to \(Doctor.userName(st.st_uid)): deliveries to it defer; chown -R \(uid) \(dir)")
                bad += 1
            }
        }
        if bad == 0 && !dirs.isEmpty { ok("the \(seen.count) directories of users/assign and users/vdomains belong to their uids") }
    }

    /// The file backend's domains (users/vdomains); none when it is not used.
    func fileDomains() -> [VDomain] {
        (try? FileStore(home: home).loadDomains()) ?? []
    }

    // MARK: domain files

    /// One line of control/virtualdomains: `[user@]domain:prefix`,
    /// `.domain:prefix` or `:prefix`; an empty prefix exempts the domain.
    static func virtualDomainEntry(_ line: [UInt8]) -> (key: String, prefix: String)? {
        guard let colon = line.firstIndex(of: Ascii.colon) else { return nil }
        let key = Array(line[..<colon]).string, prefix = Array(line[(colon + 1)...]).string
        if prefix.contains(where: { $0 == " " || $0 == "\t" || $0 == ":" || $0 == "@" }) { return nil }
        var domain = Substring(key)
        if let at = domain.lastIndex(of: "@") {
            if domain[..<at].isEmpty || domain[..<at].contains(where: { $0 == " " || $0 == "\t" }) { return nil }
            domain = domain[domain.index(after: at)...]
        }
        if domain.isEmpty && !key.isEmpty { return nil }
        if !domain.isEmpty && !Doctor.isHostPattern(String(domain)) { return nil }
        return (key.lowercased(), prefix)
    }

    /// A host name, `.domain` (any host below it) or a `[1.2.3.4]` literal.
    static func isHostPattern(_ s: String) -> Bool {
        if s.hasPrefix("[") && s.hasSuffix("]") { return s.count > 2 && !s.contains(" ") }
        return Setup.isValidHostname(s.hasPrefix(".") ? String(s.dropFirst()) : s)
    }

    /// Does qmail-smtpd take mail for `domain` with these rcpthosts lines?
    static func accepts(_ patterns: Set<String>, _ domain: String) -> Bool {
        var d = Substring(domain.lowercased())
        if patterns.contains(String(d)) { return true }
        while let dot = d.firstIndex(of: ".") {
            if patterns.contains(String(d[dot...])) { return true }
            d = d[d.index(after: dot)...]
        }
        return false
    }

    mutating func checkDomainFiles() {
        var bad = 0
        let c = Control(home: home)
        var rcpt = Set<String>()
        for name in ["rcpthosts", "morercpthosts"] {
            for (i, line) in ((try? c.list(name)) ?? []).enumerated() {
                let s = line.string
                if Doctor.isHostPattern(s) { rcpt.insert(s.lowercased()) } else {
                    problem("control/\(name) entry \(i + 1) is not a host name or .domain: \(s)"); bad += 1
                }
            }
        }
        var virtual: [String: String] = [:]
        for line in (try? c.list("virtualdomains")) ?? [] {
            guard let e = Doctor.virtualDomainEntry(line) else {
                problem("control/virtualdomains: bad line (want domain:prefix, no spaces): \(line.string)"); bad += 1; continue
            }
            virtual[e.key] = e.prefix
        }
        let hasRcpthosts = Sys.exists(home.control("rcpthosts"))
        for (key, prefix) in virtual.sorted(by: { $0.key < $1.key }) where !prefix.isEmpty && !key.isEmpty && !key.contains("@") {
            let domain = key.hasPrefix(".") ? String(key.dropFirst()) : key
            if hasRcpthosts && !Doctor.accepts(rcpt, domain) {
                warn("\(domain) is in control/virtualdomains but not in rcpthosts/morercpthosts: qmail-smtpd refuses mail for it from other hosts"); bad += 1
            }
        }
        let domains = fileDomains()
        let known = Set(domains.map { $0.name.string.lowercased() })
        for d in domains {
            let name = d.name.string.lowercased()
            if virtual[name] != d.real.string {
                problem("domain \(name) is in users/vdomains but control/virtualdomains "
                        + (virtual[name].map { "sends it to \($0)" } ?? "lacks it") + ": its mail does not reach its mailboxes; want \(name):\(d.real.string)")
                bad += 1
            }
            if hasRcpthosts && !Doctor.accepts(rcpt, name) {
                problem("domain \(name) is in users/vdomains but not in rcpthosts/morercpthosts: qmail-smtpd refuses its mail"); bad += 1
            }
        }
        if Sys.exists(FileBackend(home: home).domainsText) {
            // vadddomain writes domain:domain; such a line for a domain the list lacks is left over
            for (key, prefix) in virtual where key == prefix.lowercased() && !known.contains(key) {
                warn("\(key) is in control/virtualdomains but not in users/vdomains (left by vdeldomain or a hand edit?)"); bad += 1
            }
        }
        if bad == 0 {
            ok("rcpthosts, virtualdomains\(domains.isEmpty ? "" : " and the \(domains.count) domain(s) of users/vdomains") agree")
        }
    }

    // MARK: ports

    /// HOME/ports names the ports this home's services listen on, one per
    /// line: `service port [address]` (no address, `*`, 0.0.0.0 or `::`:
    /// every address). A port something else holds means that service
    /// cannot start, whatever its start command printed.
    mutating func checkPorts() {
        let path = "\(home.path)/ports"
        guard let data = try? FileIO.read(path) else { return }
        let listeners = ListeningSockets.scan()
        var owners: [UInt64: [ProcEntry]]? = nil
        let services = ctl.services
        var bad = 0
        var checked: [String] = []
        for (i, line) in Control.parseList(data).enumerated() {
            let f = line.split(whereSeparator: { $0 == Ascii.space || $0 == Ascii.tab }).map { Array($0).string }
            guard f.count == 2 || f.count == 3, let port = UInt16(f[1]), port > 0,
                  let want = ListeningSockets.address(f.count == 3 ? f[2] : "*") else {
                problem("\(path) line \(i + 1): want `service port [address]`: \(line.string)"); bad += 1; continue
            }
            if !checked.contains("\(f[0]) \(port)") { checked.append("\(f[0]) \(port)") }
            for l in listeners where l.port == port && ListeningSockets.overlap(want, l.address) {
                if owners == nil { owners = ListeningSockets.owners(Set(listeners.map { $0.inode })) }
                let holders = owners?[l.inode] ?? []
                if !holders.isEmpty && holders.allSatisfy({ services.inBin($0.exe) }) { continue }
                let who = holders.first.map { "\($0.exe.isEmpty ? "pid" : $0.exe) (pid \($0.pid))" } ?? "a process this user cannot see"
                problem("port \(port) (\(f[0])) is held by \(who), not by a program of \(home.bin): \(f[0]) cannot listen there")
                bad += 1
                break
            }
        }
        if bad == 0 && !checked.isEmpty { ok("ports of HOME/ports free or held by this home: \(checked.joined(separator: ", "))") }
    }

    // MARK: deferred mail

    /// qmail keeps a delivery's error only in qmail-send's log: read the log
    /// qmailctl.conf names (sendlog=, else log=) and show why queued
    /// messages wait.
    mutating func checkDeferred() {
        guard let queued = try? QueueScan(root: home.queue).ids(inSplit: "mess"), !queued.isEmpty else { return }
        guard let log = ctl.config.sendLog, let text = Doctor.tail(log, bytes: 8 << 20) else {
            ok("\(queued.count) message(s) queued; the reasons for deferrals are in qmail-send's log (name it with sendlog= in qmailctl.conf)")
            return
        }
        let report = LogReport()
        for line in text.split(separator: "\n") { report.add(line: line) }
        var waiting = 0
        for id in queued.sorted() {
            guard let d = report.lastDeferral[id] else { continue }
            waiting += 1
            if waiting <= 10 { warn("msg \(id) to \(d.recipient) deferred: \(d.report.prefix(200))") }
        }
        if waiting > 10 { warn("\(waiting - 10) more deferred message(s): qmail-report \(log)") }
        if waiting == 0 { ok("no queued message has a deferral in \(log)") }
    }

    /// The last `bytes` of a log file, or of DIR/current for a multilog directory.
    static func tail(_ path: String, bytes: Int) -> String? {
        let file = Sys.isDirectory(path) ? "\(path)/current" : path
        guard let fd = try? Sys.open(file, O_RDONLY) else { return nil }
        defer { Sys.close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size >= 0, lseek(fd, max(0, size - off_t(bytes)), SEEK_SET) >= 0 else { return nil }
        var out: [UInt8] = []
        let r = ByteReader(fd: fd, capacity: 1 << 16)
        try? r.forEachChunk { out += $0 }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: fastforward

    /// The aliases source and cdb fastforward reads, when a .qmail file in
    /// HOME/alias runs it (`|fastforward ... /etc/aliases.cdb`); nil when
    /// fastforward is not configured, so /etc/aliases means nothing to qmail.
    func fastforwardAliases() -> (source: String, cdb: String)? {
        let dir = "\(home.path)/alias"
        for name in ((try? Sys.listDirectory(dir)) ?? []).sorted() where name.hasPrefix(".qmail") {
            guard let data = try? FileIO.read("\(dir)/\(name)", limit: 1 << 16) else { continue }
            for line in Control.parseList(data) where line.first == UInt8(ascii: "|") {
                let words = line.dropFirst().split(separator: Ascii.space).map { Array($0).string }
                guard let prog = words.first, FileIO.baseName(prog) == "fastforward" else { continue }
                let cdb = words.last(where: { $0.hasSuffix(".cdb") }) ?? ctl.config.aliases + ".cdb"
                return (String(cdb.dropLast(4)), cdb)
            }
        }
        return nil
    }
}

extension String {
    func trimmingNul() -> String { var s = self; while s.last == "\0" { s.removeLast() }; return s }
}

/// TCP sockets in LISTEN state (/proc/net/tcp and tcp6).
struct ListeningSockets {
    let address: [UInt8]   // 4 or 16 bytes, network order
    let port: UInt16
    let inode: UInt64

    static func scan() -> [ListeningSockets] {
        var out: [ListeningSockets] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let data = try? FileIO.read(file, limit: 16 << 20) else { continue }
            for raw in data.split(separator: Ascii.lf).dropFirst() {
                let f = raw.split(separator: Ascii.space).map { Array($0).string }
                guard f.count > 9, f[3] == "0A", let colon = f[1].firstIndex(of: ":"),
                      let port = UInt16(f[1][f[1].index(after: colon)...], radix: 16),
                      let inode = UInt64(f[9]), let addr = kernelHex(f[1][..<colon]) else { continue }
                out.append(ListeningSockets(address: addr, port: port, inode: inode))
            }
        }
        return out
    }

    /// /proc/net/tcp prints each 32-bit word of the address in host order.
    static func kernelHex(_ s: Substring) -> [UInt8]? {
        guard s.count == 8 || s.count == 32 else { return nil }
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 8)
            guard let w = UInt32(s[i..<j], radix: 16) else { return nil }
            withUnsafeBytes(of: w) { out += $0 }
            i = j
        }
        return out
    }

    /// An address of HOME/ports as bytes; [] for every address.
    static func address(_ s: String) -> [UInt8]? {
        if s == "*" || s == "0.0.0.0" || s == "::" { return [] }
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }

    /// Would a listener on `theirs` keep us from binding `ours`? A wildcard
    /// covers its family; an IPv6 wildcard covers IPv4 too (dual stack).
    static func overlap(_ ours: [UInt8], _ theirs: [UInt8]) -> Bool {
        let wildcard = theirs.allSatisfy { $0 == 0 }
        if ours.isEmpty { return true }
        if wildcard { return theirs.count == ours.count || theirs.count == 16 }
        return ours == theirs
    }

    /// The processes holding each socket inode (those this user can see).
    static func owners(_ inodes: Set<UInt64>) -> [UInt64: [ProcEntry]] {
        var out: [UInt64: [ProcEntry]] = [:]
        for p in ProcScan.all().entries {
            guard let fds = try? Sys.listDirectory("/proc/\(p.pid)/fd") else { continue }
            for fd in fds {
                var buf = [CChar](repeating: 0, count: 64)
                let n = readlink("/proc/\(p.pid)/fd/\(fd)", &buf, 63)
                guard n > 9 else { continue }
                let link = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                guard link.hasPrefix("socket:["), let inode = UInt64(link.dropFirst(8).dropLast()), inodes.contains(inode) else { continue }
                out[inode, default: []].append(p)
            }
        }
        return out
    }
}
