// tcpserver: accepts TCP connections and runs a program for each, with the
// connection on fds 0 and 1 and the TCP* environment variables set, as
// ucspi-tcp 0.88's tcpserver does (options, rules cdb, -v log lines, exit
// codes). Runs as root when binding a low port, then as -u/-g or -U.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct TCPServerOptions {
    public var limit = 40
    public var backlog = 20
    public var rulesPath: String?
    public var allowNoRules = false
    public var banner: [UInt8] = []
    public var uid: uid_t?
    public var gid: gid_t?
    public var localName: String?
    public var ident = true
    public var identTimeout = 26
    public var remoteHost = true
    public var paranoid = false
    public var noDelay = false
    public var verbosity = 1
    public var printPort = false
    public var family: Int32 = AF_UNSPEC
    public var host = ""
    public var port = ""
    public var program: [String] = []
    /// Given the program's words: the entry point to run in the forked
    /// child instead of an exec, or nil (exec as always). Set by main's caller.
    public var inProcess: ((_ argv: [String]) -> ((_ argv: [String]) -> Int32)?)?

    public init() {}

    static let usage = "tcpserver: usage: tcpserver [ -1UXpPhHrRoOdDqQv46 ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] host port program"

    /// Parses argv (without the program name) the way djb's sgetopt does:
    /// flags may be grouped, an option's argument may follow at once.
    public static func parse(_ args: [String]) -> TCPServerOptions? {
        var o = TCPServerOptions()
        var i = 0
        let withArg: Set<Character> = ["c", "x", "B", "g", "u", "b", "l", "t"]
        while i < args.count {
            let a = args[i]
            if a == "--" { i += 1; break }
            guard a.hasPrefix("-"), a.count > 1 else { break }
            var chars = Array(a.dropFirst())
            while !chars.isEmpty {
                let c = chars.removeFirst()
                var value: String?
                if withArg.contains(c) {
                    if !chars.isEmpty { value = String(chars); chars = [] } else {
                        i += 1
                        guard i < args.count else { return nil }
                        value = args[i]
                    }
                }
                switch c {
                case "c": guard let n = Int(value!), n > 0 else { return nil }; o.limit = n
                case "b": guard let n = Int(value!), n >= 0 else { return nil }; o.backlog = n
                case "t": guard let n = Int(value!), n >= 0 else { return nil }; o.identTimeout = n
                case "x": o.rulesPath = value
                case "X": o.allowNoRules = true
                case "B": o.banner = Array(value!.utf8)
                case "u": guard let n = UInt32(value!) else { return nil }; o.uid = n
                case "g": guard let n = UInt32(value!) else { return nil }; o.gid = n
                case "U":
                    guard let u = Sys.getenv("UID").flatMap({ UInt32($0) }),
                          let g = Sys.getenv("GID").flatMap({ UInt32($0) }) else { return nil }
                    o.uid = u; o.gid = g
                case "l": o.localName = value
                case "h": o.remoteHost = true
                case "H": o.remoteHost = false
                case "p": o.paranoid = true
                case "P": o.paranoid = false
                case "r": o.ident = true
                case "R": o.ident = false
                case "d": o.noDelay = false
                case "D": o.noDelay = true
                case "o", "O": break  // IP options are always killed on Linux's side: nothing to do
                case "q": o.verbosity = 0
                case "Q": o.verbosity = 1
                case "v": o.verbosity = 2
                case "1": o.printPort = true
                case "4": o.family = AF_INET
                case "6": o.family = AF_INET6
                default: return nil
                }
            }
            i += 1
        }
        guard args.count - i >= 3 else { return nil }
        o.host = args[i]
        o.port = args[i + 1]
        o.program = Array(args[(i + 2)...])
        return o
    }
}

nonisolated(unsafe) var tcpserverWakeFD: Int32 = -1

/// Why a connection is dropped: the text after "dropping connection, ".
struct TCPServerDrop: Error {
    let text: String
    init(_ text: String) { self.text = text }
}

public enum TCPServer {
    /// A setup failure: "tcpserver: fatal: " and the text, exit 111.
    struct Fatal: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    /// Runs the server; returns only on a usage or setup error (exit code).
    /// `inProcess` (TCPServerOptions.inProcess) lets the multi-call file
    /// run its own programs without an exec.
    public static func main(_ args: [String],
                            inProcess: ((_ argv: [String]) -> ((_ argv: [String]) -> Int32)?)? = nil) -> Int32 {
        guard var o = TCPServerOptions.parse(args) else {
            Sys.warn(TCPServerOptions.usage)
            return QmailExit.permanent
        }
        o.inProcess = inProcess
        do throws(Fatal) {
            let listener = try listenOn(o)
            return try serve(listener, o)
        } catch {
            Sys.warn("tcpserver: fatal: " + error.text)
            return QmailExit.temporary
        }
    }

    /// Binds and listens, with our ids dropped to -u/-g in between.
    static func listenOn(_ o: TCPServerOptions) throws(Fatal) -> Int32 {
        let listener = try bindListener(o)
        if o.uid != nil || o.gid != nil {
            // -g alone changes the group and keeps our uid.
            let c = Credentials(uid: o.uid ?? getuid(), gid: o.gid ?? getgid())
            if let e = Privileges.drop(to: c) { throw Fatal("unable to drop privileges to uid \(c.uid) gid \(c.gid): \(e)") }
        }
        if listen(listener, Int32(o.backlog)) != 0 { throw Fatal("unable to listen: \(Sys.strerror(errno))") }
        if o.printPort {
            var st = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &st) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
            let port = SocketAddress(storage: st)?.port ?? 0
            try? Sys.writeAll(1, "\(port)\n")
        }
        close(0)
        close(1)
        return listener
    }

    /// A listening socket on `host` and `port` as tcpserver reads them
    /// ("0" for every address, a name or number for the port), for a
    /// program that serves on its own (qmail-webadmin).
    public static func listener(host: String, port: String, backlog: Int) -> Result<Int32, ListenError> {
        var o = TCPServerOptions()
        o.host = host
        o.port = port
        do throws(Fatal) {
            let s = try bindListener(o)
            if Glibc.listen(s, Int32(backlog)) != 0 {
                let e = ListenError(text: Sys.strerror(errno))
                close(s)
                return .failure(e)
            }
            return .success(s)
        } catch {
            return .failure(ListenError(text: error.text))
        }
    }

    public struct ListenError: Error {
        public let text: String
    }

    static func bindListener(_ o: TCPServerOptions) throws(Fatal) -> Int32 {
        guard let port = NameLookup.port(o.port) else { throw Fatal("unable to figure out port number for \(o.port)") }
        var candidates: [IPAddress] = []
        if o.host == "0" || o.host.isEmpty {
            switch o.family {
            case AF_INET: candidates = [.unspecifiedV4]
            case AF_INET6: candidates = [.unspecifiedV6]
            default:
                // Debian's tcpserver binds 0.0.0.0 for host 0; we bind the
                // dual-stack :: when the kernel has IPv6, else 0.0.0.0.
                candidates = [.unspecifiedV6, .unspecifiedV4]
            }
        } else if o.host == "::" || o.host == "0::0" {
            candidates = [.unspecifiedV6]
        } else if let ip = IPAddress(o.host)?.unmapped {
            candidates = [ip]
        } else {
            candidates = NameLookup.addresses(of: o.host, family: o.family)
            if candidates.isEmpty { throw Fatal("no IP address for \(o.host)") }
        }
        var lastErr: Int32 = 0
        for ip in candidates {
            if o.family == AF_INET, ip.isV6 { continue }
            if o.family == AF_INET6, !ip.isV6 { continue }
            let fam = ip.isV6 ? AF_INET6 : AF_INET
            let s = socket(fam, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if s < 0 { lastErr = errno; continue }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if ip.isV6 {
                var v6only: Int32 = (o.family == AF_INET6) ? 1 : 0
                setsockopt(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<Int32>.size))
            }
            let r = SocketAddress(ip: ip, port: port).withSockaddr { bind(s, $0, $1) }
            if r == 0 { return s }
            lastErr = errno
            close(s)
        }
        throw Fatal("unable to bind: \(Sys.strerror(lastErr))")
    }

    nonisolated(unsafe) static var children = 0

    static func status(_ o: TCPServerOptions) {
        if o.verbosity >= 2 { Sys.warn("tcpserver: status: \(children)/\(o.limit)") }
    }

    static func reap(_ o: TCPServerOptions) {
        while let (pid, st) = ChildProcess.reapAny() {
            if o.verbosity >= 2 { Sys.warn("tcpserver: end \(pid) status \(st.waitStatus)") }
            if children > 0 { children -= 1 }
            status(o)
        }
    }

    /// Accepts connections for ever, a forked child for each; throws only
    /// when it cannot start.
    static func serve(_ listener: Int32, _ o: TCPServerOptions) throws(Fatal) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // SIGCHLD wakes the poll through a self-pipe, so reaping and the log
        // lines happen in the main flow, never inside a signal handler.
        let p: (read: Int32, write: Int32)
        do { p = try Sys.pipeCloexec() } catch { throw Fatal("unable to create pipe: \(Sys.strerror((error as? SysError)?.errno ?? EMFILE))") }
        _ = fcntl(p.write, F_SETFL, O_NONBLOCK)
        _ = fcntl(p.read, F_SETFL, O_NONBLOCK)
        tcpserverWakeFD = p.write
        signal(SIGCHLD) { _ in
            var b: UInt8 = 0
            _ = write(tcpserverWakeFD, &b, 1)
        }
        status(o)
        var drain = [UInt8](repeating: 0, count: 64)
        while true {
            reap(o)
            var pfd = [pollfd(fd: p.read, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            let n = poll(&pfd, children >= o.limit ? 1 : 2, -1)
            if n <= 0 { continue }
            if pfd[0].revents != 0 { _ = read(p.read, &drain, drain.count); continue }
            if children >= o.limit || pfd[1].revents == 0 { continue }
            var st = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let t = withUnsafeMutablePointer(to: &st) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &len) }
            }
            if t < 0 { continue }
            children += 1
            status(o)
            // Whether the program runs in the child without an exec, asked
            // once per connection (it stats the program and ourselves).
            let entry = o.inProcess?(o.program)
            if entry == nil, spawnDirectly(t, remote: SocketAddress(storage: st), o) != nil {
                close(t)
                continue
            }
            do throws(ChildProcess.Failure) {
                _ = try ChildProcess.forkRunning {
                    close(listener)
                    close(p.read)
                    close(p.write)
                    return connection(t, remote: SocketAddress(storage: st), o, inProcess: entry)
                }
            } catch {
                Sys.warn("tcpserver: warning: dropping connection, unable to fork: \(Sys.strerror(error.errno))")
                children -= 1
                status(o)
            }
            close(t)
        }
    }

    /// A connection that needs no look-up on the network (-H, -R, -l, no
    /// banner) and runs a program by exec (the caller has found that it is
    /// not one to run in process): its rules are read here and the
    /// program started through posix_spawn, with no fork of this process
    /// (its page tables copied, then thrown away by the exec). Returns nil
    /// when the connection is not of that kind, or is denied, or the rules
    /// or the start fail: the forked child then does it all, and says why.
    static func spawnDirectly(_ t: Int32, remote: SocketAddress?, _ o: TCPServerOptions) -> pid_t? {
        guard !o.remoteHost, !o.ident, o.localName != nil, o.banner.isEmpty, let remote else { return nil }
        if o.noDelay { noDelay(t) }
        guard case .success(let a) = admit(t, remote: remote, o), !a.deny else { return nil }
        var plan = ChildProcess.Plan(o.program, fds: [.dup(t, to: 0), .dup(t, to: 1)])
        plan.environment = ChildProcess.environment(changing: a.environment)
        guard let pid = try? ChildProcess.spawn(plan) else { return nil }
        if o.verbosity >= 2 {
            Sys.warn("tcpserver: pid \(pid) from \(remote.ip.description)")
            Sys.warn("tcpserver: ok \(pid) \(a.who)")
        }
        return pid
    }

    /// What a connection's program gets: the TCP* variables and the
    /// rules' own (nil: unset), whether the rules deny it, and the -v
    /// line's description of both ends.
    struct Admission {
        var environment: [String: String?] = [:]
        var deny = false
        var who = ""
    }

    /// The connection's look-ups and rules; a failure is the warning's
    /// text after "dropping connection, ".
    static func admit(_ t: Int32, remote: SocketAddress, _ o: TCPServerOptions) -> Result<Admission, TCPServerDrop> {
        let remoteIP = remote.ip.description
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &st) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(t, $0, &len) } }
        guard let local = SocketAddress(storage: st) else { return .failure(TCPServerDrop("unable to get local address")) }
        let localIP = local.ip.description

        let localHost = o.localName ?? NameLookup.name(of: local.ip)
        var remoteHost: String?
        if o.remoteHost, let name = NameLookup.name(of: remote.ip) {
            remoteHost = name
            if o.paranoid && !NameLookup.addresses(of: name).contains(remote.ip) { remoteHost = nil }
        }
        let remoteInfo = o.ident ? Ident.query(local: local, remote: remote, timeout: o.identTimeout) : nil

        var a = Admission()
        a.environment = ["PROTO": "TCP", "TCPLOCALIP": localIP, "TCPLOCALPORT": String(local.port), "TCPLOCALHOST": localHost,
                         "TCPREMOTEIP": remoteIP, "TCPREMOTEPORT": String(remote.port), "TCPREMOTEHOST": remoteHost,
                         "TCPREMOTEINFO": remoteInfo]
        if let path = o.rulesPath {
            do {
                if let cdb = try CdbReader.open(path) {
                    if let v = try RulesLookup.lookup(cdb, ip: Array(remoteIP.utf8), host: remoteHost.map { Array($0.utf8) },
                                                      info: remoteInfo.map { Array($0.utf8) }) {
                        a.deny = v.deny
                        for (name, value) in v.env { a.environment[name.string] = .some(value.string) }
                    }
                } else if !o.allowNoRules {
                    return .failure(TCPServerDrop("unable to read \(path): file does not exist"))
                }
            } catch {
                return .failure(TCPServerDrop("unable to read \(path): \(error)"))
            }
        }
        a.who = "\(localHost ?? ""):\(localIP):\(local.port) \(remoteHost ?? ""):\(remoteIP):\(remoteInfo ?? ""):\(remote.port)"
        return .success(a)
    }

    static func noDelay(_ t: Int32) {
        var one: Int32 = 1
        setsockopt(t, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The child for one connection: environment, rules, log line, then
    /// `inProcess` (o.inProcess's answer for the program) or an exec.
    static func connection(_ t: Int32, remote: SocketAddress?, _ o: TCPServerOptions,
                           inProcess: ((_ argv: [String]) -> Int32)?) -> Int32 {
        let drop = "tcpserver: warning: dropping connection, "
        guard let remote else { return QmailExit.temporary }
        if o.verbosity >= 2 { Sys.warn("tcpserver: pid \(getpid()) from \(remote.ip.description)") }
        if o.noDelay { noDelay(t) }
        if !o.banner.isEmpty { _ = try? Sys.writeAll(t, o.banner) }
        let a: Admission
        switch admit(t, remote: remote, o) {
        case .failure(let why): Sys.warn(drop + why.text); return QmailExit.temporary
        case .success(let x): a = x
        }
        for (name, value) in a.environment { setOrUnset(name, value) }
        if o.verbosity >= 2 { Sys.warn("tcpserver: \(a.deny ? "deny" : "ok") \(getpid()) \(a.who)") }
        if a.deny { return QmailExit.permanent }
        if let entry = inProcess {
            // As the exec below would leave it: the connection on 0 and 1
            // only, SIGCHLD back to default (our handler writes to a pipe
            // this child has closed, whose number may be reused).
            if let e = ChildProcess.arrange([.dup(t, to: 0), .dup(t, to: 1)]) { Sys.warn(drop + "\(e)"); return QmailExit.temporary }
            if t > 1 { close(t) }
            signal(SIGCHLD, SIG_DFL)
            return entry(o.program)
        }
        // The connection's own number closes at exec; it lives on as 0 and 1.
        _ = fcntl(t, F_SETFD, FD_CLOEXEC)
        let e = ChildProcess.exec(.init(o.program, fds: [.dup(t, to: 0), .dup(t, to: 1)]))
        Sys.warn(drop + "\(e)")
        return QmailExit.temporary
    }

    static func setOrUnset(_ name: String, _ value: String?) {
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
}

/// RFC 1413 ident: asks the client's port 113 who owns the connection.
enum Ident {
    static func query(local: SocketAddress, remote: SocketAddress, timeout: Int) -> String? {
        if timeout == 0 { return nil }
        let fam = remote.ip.isV6 ? AF_INET6 : AF_INET
        let s = socket(fam, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return nil }
        defer { close(s) }
        let deadline = Sys.now() + timeout
        _ = SocketAddress(ip: local.ip, port: 0).withSockaddr { bind(s, $0, $1) }
        let r = SocketAddress(ip: remote.ip, port: 113).withSockaddr { connect(s, $0, $1) }
        if r != 0 && errno != EINPROGRESS { return nil }
        func wait(_ events: Int16) -> Bool {
            let left = deadline - Sys.now()
            if left <= 0 { return false }
            var p = pollfd(fd: s, events: events, revents: 0)
            return poll(&p, 1, Int32(left * 1000)) == 1 && (p.revents & events) != 0
        }
        guard wait(Int16(POLLOUT)) else { return nil }
        var soerr: Int32 = 0
        var l = socklen_t(4)
        getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &l)
        if soerr != 0 { return nil }
        let q = Array("\(remote.port) , \(local.port)\r\n".utf8)
        if write(s, q, q.count) != q.count { return nil }
        var reply: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 512)
        while reply.count < 512, !reply.contains(Ascii.lf) {
            guard wait(Int16(POLLIN)) else { return nil }
            let n = read(s, &buf, buf.count)
            if n <= 0 { break }
            reply += buf[0..<n]
        }
        // "ports : USERID : os : name"
        let fields = reply.split(separator: Ascii.colon, maxSplits: 3, omittingEmptySubsequences: false)
        guard fields.count == 4,
              Array(fields[1]).trimmingTrailing({ $0 == Ascii.space }).drop(while: { $0 == Ascii.space }).elementsEqual("USERID".utf8) else { return nil }
        var name = Array(fields[3].drop(while: { $0 == Ascii.space }))
        while let c = name.last, c == Ascii.lf || c == Ascii.cr { name.removeLast() }
        name = name.map { ($0 < 32 || $0 == Ascii.colon) ? UInt8(ascii: "?") : $0 }
        return name.isEmpty ? nil : name.string
    }
}
