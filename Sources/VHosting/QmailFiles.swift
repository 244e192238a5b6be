// Plumbing shared by the admin commands: errors with exit codes, option
// parsing, password input, the qmail control files a hosted domain needs,
// qmail-newu and the HUP to qmail-send.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

/// An admin command's failure. `usage` and `refused` are the caller's
/// mistakes (exit 1, nothing written); `system` is the machine's (exit 111).
public enum AdminError: Error, CustomStringConvertible {
    case usage(String)
    case refused(String)
    case system(String)

    public var description: String {
        switch self {
        case .usage(let s): return "usage: \(s)"
        case .refused(let s): return s
        case .system(let s): return s
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage, .refused: return 1
        case .system: return 111
        }
    }

    /// Wraps whatever a step threw: name errors are the caller's, the rest
    /// the system's.
    static func from(_ e: Error) -> AdminError {
        if let a = e as? AdminError { return a }
        if let n = e as? NameError { return .refused(n.description) }
        return .system("\(e)")
    }
}

/// getopt-style parsing: single-letter flags, flags with a value
/// ("-q 100M" or "-q100M"), "--" ends the options.
public struct Options {
    public var flags: Set<Character> = []
    public var values: [Character: String] = [:]
    public var operands: [String] = []

    public init(_ args: [String], flags allowed: String, values withValue: String, usage: String) throws {
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" { operands += args[(i + 1)...]; break }
            if a.hasPrefix("-") && a.count > 1 {
                var chars = Array(a.dropFirst())
                while let c = chars.first {
                    chars.removeFirst()
                    if withValue.contains(c) {
                        if !chars.isEmpty { values[c] = String(chars); chars = [] } else {
                            i += 1
                            guard i < args.count else { throw AdminError.usage(usage) }
                            values[c] = args[i]
                        }
                    } else if allowed.contains(c) {
                        flags.insert(c)
                    } else {
                        throw AdminError.usage(usage)
                    }
                }
            } else {
                operands.append(a)
            }
            i += 1
        }
    }
}

public enum PasswordInput {
    /// The password from `arg`; when it is nil or "-", from the terminal
    /// (asked twice, echo off) or else the first line of standard input.
    public static func obtain(_ arg: String?, random: Bool = false) throws -> [UInt8] {
        if random { return randomPassword() }
        if let a = arg, a != "-" { return try Names.password(Array(a.utf8)) }
        if isatty(0) == 1 {
            let first = try prompt("New password: ")
            let second = try prompt("Retype new password: ")
            guard ConstantTime.equals(first, second) else { throw AdminError.refused("the passwords do not match") }
            return try Names.password(first)
        }
        let r = ByteReader(fd: 0, capacity: 1024)
        guard let (line, overflow) = try r.line(limit: Names.maxPassword + 2) else {
            throw AdminError.refused("no password on standard input")
        }
        if overflow { throw AdminError.refused(NameError.tooLong("password", Names.maxPassword).description) }
        var p = line
        if p.last == Ascii.lf { p.removeLast() }
        if p.last == Ascii.cr { p.removeLast() }
        return try Names.password(p)
    }

    static func prompt(_ text: String) throws -> [UInt8] {
        // Echo goes off (discarding typeahead) before the prompt appears,
        // so whatever is typed after the prompt is kept and not shown.
        var old = termios()
        let haveTerm = tcgetattr(0, &old) == 0
        if haveTerm {
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            _ = tcsetattr(0, TCSAFLUSH, &quiet)
        }
        try? Sys.writeAll(2, text)
        defer {
            if haveTerm { _ = tcsetattr(0, TCSAFLUSH, &old) }
            try? Sys.writeAll(2, "\n")
        }
        var out: [UInt8] = []
        var c: UInt8 = 0
        while out.count <= Names.maxPassword {
            let n = read(0, &c, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || c == Ascii.lf { break }
            out.append(c)
        }
        if out.last == Ascii.cr { out.removeLast() }
        return out
    }

    /// 16 characters from the system's random source (vpopmail's -r).
    public static func randomPassword() -> [UInt8] {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789".utf8)
        var raw = [UInt8](repeating: 0, count: 16)
        _ = getentropy(&raw, raw.count)
        return raw.map { alphabet[Int($0) % alphabet.count] }
    }
}

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
        guard let code = Spawn.run([path]), code == 0 else { return ["warning: \(path) failed; run it again by hand"] }
        return []
    }

    /// Where qmail-send's pid may be written, first found wins.
    public var sendPidFiles: [String] { [home.path + "/run/qmail-send.pid", home.queue + "/lock/qmail-send.pid"] }

    /// HUP to qmail-send so it rereads virtualdomains: the pid in a pid file
    /// if its process is qmail-send, else every process running this home's
    /// bin/qmail-send.
    public func hupSend() -> [String] {
        for f in sendPidFiles {
            guard let data = try? FileIO.read(f), let pid = Decimal.scanPrefix(data), pid > 1 else { continue }
            let comm = (try? FileIO.read("/proc/\(pid)/comm")) ?? nil
            guard let c = comm, c.string.hasPrefix("qmail-send") else { continue }
            if kill(pid_t(pid), SIGHUP) == 0 { return [] }
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
            if exe == want && kill(pid_t(pid), SIGHUP) == 0 { sent = true }
        }
        if sent { return [] }
        return ["note: qmail-send is not running; it reads virtualdomains when it starts"]
    }
}
