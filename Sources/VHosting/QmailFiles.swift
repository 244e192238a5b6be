// The qmail files a hosted domain appears in (control files, users/assign),
// qmail-newu and the HUP to qmail-send, as the admin commands change them.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

/// The qmail files a hosted domain appears in.
public struct QmailFiles {
    public let home: QmailHome
    /// vpopmail's rule: rcpthosts takes the first 50 domains, the rest go
    /// to morercpthosts (compiled by qmail-newmrh).
    public static let rcpthostsLimit = 50

    var control: Control { Control(home: home) }

    func lines(_ path: String) throws -> [[UInt8]] {
        guard let d = try FileIO.read(path) else { return [] }
        return d.split(separator: Ascii.lf, omittingEmptySubsequences: true).map(Array.init)
    }

    func write(_ path: String, _ lines: [[UInt8]]) throws {
        var out: [UInt8] = []
        for l in lines { out += l + [Ascii.lf] }
        try FileStore.writeAtomic(path, out, mode: 0o644)
    }

    /// virtualdomains: the entry for `domain`, if any.
    public func virtualDomainTarget(_ domain: [UInt8]) throws -> [UInt8]? {
        for l in try lines(home.control("virtualdomains")) {
            guard let c = l.firstIndex(of: Ascii.colon) else { continue }
            if Array(l[0..<c]).caseInsensitiveEquals(domain) { return Array(l[(c + 1)...]) }
        }
        return nil
    }

    public func addVirtualDomain(_ domain: [UInt8], prefix: [UInt8]) throws {
        var ls = try lines(home.control("virtualdomains"))
        ls.append(domain + [Ascii.colon] + prefix)
        try write(home.control("virtualdomains"), ls)
    }

    public func removeVirtualDomain(_ domain: [UInt8]) throws {
        let path = home.control("virtualdomains")
        let ls = try lines(path)
        let kept = ls.filter { l in
            guard let c = l.firstIndex(of: Ascii.colon) else { return true }
            return !Array(l[0..<c]).caseInsensitiveEquals(domain)
        }
        if kept.count != ls.count { try write(path, kept) }
    }

    /// Adds to rcpthosts, or to morercpthosts (and runs qmail-newmrh) once
    /// rcpthosts is full. Returns notes for the operator.
    public func addRcptHost(_ domain: [UInt8]) throws -> [String] {
        let rcpt = home.control("rcpthosts"), more = home.control("morercpthosts")
        var r = try lines(rcpt)
        var m = try lines(more)
        if r.contains(where: { $0.caseInsensitiveEquals(domain) }) || m.contains(where: { $0.caseInsensitiveEquals(domain) }) { return [] }
        if r.filter({ !$0.isEmpty && $0.first != Ascii.hash }).count < QmailFiles.rcpthostsLimit {
            r.append(domain)
            try write(rcpt, r)
            return []
        }
        m.append(domain)
        try write(more, m)
        return runTool("qmail-newmrh")
    }

    public func removeRcptHost(_ domain: [UInt8]) throws -> [String] {
        var notes: [String] = []
        for name in ["rcpthosts", "morercpthosts"] {
            let path = home.control(name)
            let ls = try lines(path)
            let kept = ls.filter { !$0.caseInsensitiveEquals(domain) }
            if kept.count != ls.count {
                try write(path, kept)
                if name == "morercpthosts" { notes += runTool("qmail-newmrh") }
            }
        }
        return notes
    }

    var assignPath: String { home.users + "/assign" }

    /// The assign line vpopmail writes: +domain-:domain:uid:gid:dir:-::
    public static func assignLine(_ d: VDomain) -> [UInt8] {
        Array("+".utf8) + d.name + Array("-:".utf8) + d.real + Array(":\(d.uid):\(d.gid):\(d.dir):-::".utf8)
    }

    public func hasAssign(_ domain: [UInt8]) throws -> Bool {
        let prefix = Array("+".utf8) + domain + Array("-:".utf8)
        return try lines(assignPath).contains { $0.hasPrefix(prefix) }
    }

    /// Adds the wildcard line before the final "." and runs qmail-newu.
    public func addAssign(_ d: VDomain) throws -> [String] {
        var ls = try lines(assignPath).filter { $0 != Array(".".utf8) }
        ls.append(QmailFiles.assignLine(d))
        ls.append(Array(".".utf8))
        try write(assignPath, ls)
        return runTool("qmail-newu")
    }

    public func removeAssign(_ domain: [UInt8]) throws -> [String] {
        let prefix = Array("+".utf8) + domain + Array("-:".utf8)
        let ls = try lines(assignPath)
        let kept = ls.filter { !$0.hasPrefix(prefix) }
        if kept.count == ls.count { return [] }
        try write(assignPath, kept.contains(Array(".".utf8)) ? kept : kept + [Array(".".utf8)])
        return runTool("qmail-newu")
    }

    /// Runs HOME/bin/NAME; a missing program or a failure is a note, not
    /// an error: the text files are right and the tool can be run later.
    func runTool(_ name: String) -> [String] {
        let path = home.bin(name)
        guard access(path, X_OK) == 0 else { return ["note: \(path) not found; run \(name) once it is installed"] }
        guard ChildProcess.run(.init([path])) == .exited(0) else { return ["warning: \(path) failed; run it again by hand"] }
        return []
    }

    /// Where qmail-send's pid may be written, first found wins.
    public var sendPidFiles: [String] { [home.path + "/run/qmail-send.pid", home.queue + "/lock/qmail-send.pid"] }

    /// HUP to qmail-send so it rereads virtualdomains.
    public func hupSend() -> [String] {
        signalSend(SIGHUP, unless: "it reads virtualdomains when it starts")
    }

    /// `sig` to qmail-send: the pid in a pid file if its process is
    /// qmail-send, else every process running this home's bin/qmail-send.
    /// Not running: a note saying why that is fine (`unless`).
    public func signalSend(_ sig: Int32, unless: String = "it retries deferred deliveries when it starts") -> [String] {
        for f in sendPidFiles {
            guard let data = try? FileIO.read(f), let pid = Decimal.scanPrefix(data), pid > 1 else { continue }
            let comm = (try? FileIO.read("/proc/\(pid)/comm")) ?? nil
            guard let c = comm, c.string.hasPrefix("qmail-send") else { continue }
            if kill(pid_t(pid), sig) == 0 { return [] }
        }
        // No pid file: find the qmail-send running from this home's bin/.
        let want = home.bin("qmail-send")
        var sent = false
        for name in (try? Sys.listDirectory("/proc")) ?? [] {
            guard let pid = Decimal.parse(Array(name.utf8)), pid > 1 else { continue }
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/\(pid)/exe", &buf, buf.count - 1)
            guard n > 0 else { continue }
            let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if exe == want && kill(pid_t(pid), sig) == 0 { sent = true }
        }
        if sent { return [] }
        return ["note: qmail-send is not running; \(unless)"]
    }
}
