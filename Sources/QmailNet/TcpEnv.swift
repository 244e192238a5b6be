// tcp-env and rblsmtpd: programs that prepare the environment of a network
// server and then exec it.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// How tcp-env and rblsmtpd end: by running the server in their place, or
/// with an exit code. Their main does it, so the library never exits.
public enum Handoff: Equatable {
    case exec([String])
    case exit(Int32)

    /// Replaces this process with the server; returns only the exit code:
    /// the one given, or 111 (after saying why) when the exec failed.
    public func perform() -> Int32 {
        switch self {
        case .exit(let code):
            return code
        case .exec(let argv):
            let e = ChildProcess.exec(.init(argv))
            Sys.warn("\(CommandLine.arguments.first.map(FileIO.baseName) ?? "exec"): fatal: \(e)")
            return QmailExit.temporary
        }
    }
}

public enum TcpEnv {
    /// tcp-env [-rR] [-t timeout] program [arg...]: sets PROTO, TCPLOCALIP,
    /// TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST
    /// and (unless -R) TCPREMOTEINFO from descriptor 0, then runs program.
    /// When descriptor 0 is not a TCP socket the environment is left alone.
    public static func main(_ args: [String]) -> Handoff {
        var ident = true
        var timeout = 30
        var i = 1
        while i < args.count, args[i].hasPrefix("-"), args[i] != "-" {
            let opt = args[i]
            if opt == "--" { i += 1; break }
            for c in opt.dropFirst() {
                switch c {
                case "r": ident = true
                case "R": ident = false
                case "t":
                    i += 1
                    guard i < args.count, let t = Int(args[i]) else { return usage() }
                    timeout = t
                default: return usage()
                }
            }
            i += 1
        }
        guard i < args.count else { return usage() }
        var local = sockaddr_storage(), remote = sockaddr_storage()
        var llen = socklen_t(MemoryLayout<sockaddr_storage>.size), rlen = llen
        let ok = withUnsafeMutablePointer(to: &local) { lp in
            withUnsafeMutablePointer(to: &remote) { rp in
                lp.withMemoryRebound(to: sockaddr.self, capacity: 1) { l in
                    rp.withMemoryRebound(to: sockaddr.self, capacity: 1) { r in
                        getsockname(0, l, &llen) == 0 && getpeername(0, r, &rlen) == 0
                    }
                }
            }
        }
        if ok {
            let (lip, lport) = addr(&local)
            let (rip, rport) = addr(&remote)
            if let lip, let rip, let lport, let rport {
                setenv("PROTO", "TCP", 1)
                setenv("TCPLOCALIP", "\(lip)", 1)
                setenv("TCPLOCALPORT", "\(lport)", 1)
                setenv("TCPREMOTEIP", "\(rip)", 1)
                setenv("TCPREMOTEPORT", "\(rport)", 1)
                let dns = DNSResolver.system()
                dns.timeout = 3
                if let n = try? dns.ptr(lip) { setenv("TCPLOCALHOST", n.string, 1) } else { unsetenv("TCPLOCALHOST") }
                if let n = try? dns.ptr(rip) { setenv("TCPREMOTEHOST", n.string, 1) } else { unsetenv("TCPREMOTEHOST") }
                unsetenv("TCPREMOTEINFO")
                if ident, let user = identLookup(local: lip, localPort: lport, remote: rip, remotePort: rport, timeout: timeout) {
                    setenv("TCPREMOTEINFO", user, 1)
                }
            }
        }
        return .exec(Array(args[i...]))
    }

    static func usage() -> Handoff {
        Sys.warn("tcp-env: usage: tcp-env [ -rR ] [ -t timeout ] program")
        return .exit(QmailExit.permanent)
    }

    static func addr(_ ss: inout sockaddr_storage) -> (IPAddress?, Int?) {
        let a = SocketAddress(storage: ss)
        return (a?.ip, a.map { Int($0.port) })
    }

    /// RFC 1413: asks the client's identd who owns the connection.
    static func identLookup(local: IPAddress, localPort: Int, remote: IPAddress, remotePort: Int, timeout: Int) -> String? {
        guard case .success(let fd) = SocketAddress.connect(remote, port: 113, timeout: timeout) else { return nil }
        defer { close(fd) }
        let ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: timeout, capacity: 1024)
        ch.put("\(remotePort) , \(localPort)\r\n")
        guard (try? ch.flush()) != nil, let got = try? ch.readLine(limit: 1000) else { return nil }
        let line = got.line
        let parts = line.split(byte: Ascii.colon)
        guard parts.count >= 4, parts[1].string.trimmingSpaces == "USERID" else { return nil }
        let user = parts[3...].joined(separator: [Ascii.colon]).map { $0 }
        return String(decoding: user, as: UTF8.self).trimmingSpaces
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\r" { s = s.dropLast() }
        return String(s)
    }
}

/// rblsmtpd: blocks clients listed in DNS blocklists by speaking just enough
/// SMTP to refuse their mail (ucspi-tcp's behaviour), else runs the server.
public enum RBLSMTPD {
    public static func main(_ args: [String]) -> Handoff {
        var permanent = false
        var blockOnSoftFailure = false
        var timeout = 60
        var lists: [(base: String, allow: Bool)] = []
        var i = 1
        func need() -> String? {
            i += 1
            return i < args.count ? args[i] : nil
        }
        while i < args.count, args[i].hasPrefix("-") {
            let a = args[i]
            if a == "--" { i += 1; break }
            switch a {
            case "-b": permanent = true
            case "-B": permanent = false
            case "-c": blockOnSoftFailure = true
            case "-C": blockOnSoftFailure = false
            case "-t": guard let t = need().flatMap({ Int($0) }) else { return usage() }; timeout = t
            case "-r", "-a":
                guard let base = need() else { return usage() }
                lists.append((base, a == "-a"))
            default:
                if a.hasPrefix("-r") { lists.append((String(a.dropFirst(2)), false)) }
                else if a.hasPrefix("-a") { lists.append((String(a.dropFirst(2)), true)) }
                else if a.hasPrefix("-t"), let t = Int(a.dropFirst(2)) { timeout = t }
                else { return usage() }
            }
            i += 1
        }
        guard i < args.count else { return usage() }
        let program = Array(args[i...])
        let ipText = Sys.getenv("TCPREMOTEIP") ?? ""
        var message: String? = nil
        if let env = Sys.getenv("RBLSMTPD") {
            if env.isEmpty { return .exec(program) }
            if env.hasPrefix("-") { permanent = true; message = String(env.dropFirst()) } else { message = env }
        } else if let ip = IPAddress(ipText)?.unmapped {
            let dns = DNSResolver.system()
            dns.timeout = max(1, timeout / 2)
            outer: for l in lists {
                // "-r base:text" uses an A lookup and a fixed message.
                var base = l.base
                var fixed: String? = nil
                if let c = base.firstIndex(of: ":") { fixed = String(base[base.index(after: c)...]); base = String(base[..<c]) }
                let name = Array("\(ip.reverseLabels).\(base)".utf8)
                do {
                    if l.allow {
                        if try !dns.lookup(name, .a).isEmpty { break outer }
                        continue
                    }
                    if let fixed {
                        if try !dns.lookup(name, .a).isEmpty { message = fixed.isEmpty ? "Blocked" : fixed; break outer }
                        continue
                    }
                    let txt = try dns.lookup(name, .txt)
                    if let t = txt.first {
                        message = (t.text ?? []).string
                        if message!.isEmpty { message = "\(ip) is listed in \(base)" }
                        break outer
                    }
                    if try !dns.lookup(name, .a).isEmpty { message = "\(ip) is listed in \(base)"; break outer }
                } catch DNSError.hard {
                    continue
                } catch {
                    if blockOnSoftFailure { message = "temporary RBL lookup error"; permanent = false; break outer }
                }
            }
        }
        guard let text = message else { return .exec(program) }
        let code = RblsmtpdReply.code(permanent: permanent)
        Sys.warn("rblsmtpd: \(ipText) pid \(getpid()): \(code) \(text)")
        return .exit(refuse(code: code, text: text, timeout: timeout))
    }

    static func usage() -> Handoff {
        Sys.warn("rblsmtpd: usage: rblsmtpd [ -b ] [ -R ] [ -t timeout ] [ -r base ] [ -a base ] smtpd [ arg ... ]")
        return .exit(QmailExit.permanent)
    }

    /// The blocked client's session: greet, accept HELO, refuse mail, hang
    /// up on QUIT; returns the exit code, 0.
    static func refuse(code: String, text: String, timeout: Int) -> Int32 {
        let ch = Channel(stream: FdStream(inFd: 0, outFd: 1), timeout: timeout, capacity: 4096)
        let reply = RblsmtpdReply.refusal(code: code, text: text)
        ch.put(RblsmtpdReply.greeting)
        var commands = 0
        while commands < 100 {
            guard let got = try? ch.readLine(limit: 1000) else { break }
            let line = got.line
            commands += 1
            let verb = String(decoding: line.prefix(while: { $0 != Ascii.space }).map(Ascii.lower), as: UTF8.self)
            switch verb {
            case "quit": ch.put(RblsmtpdReply.goodbye); try? ch.flush(); return 0
            case "helo", "ehlo", "rset", "noop": ch.put(RblsmtpdReply.ok)
            default: ch.put(reply)
            }
        }
        try? ch.flush()
        return 0
    }
}

/// rblsmtpd's replies to a blocked client, each with its CRLF: its own
/// server name, and the refusal for every other command.
enum RblsmtpdReply {
    static let greeting = "220 rblsmtpd.local\r\n"
    static let ok = "250 rblsmtpd.local\r\n"
    static let goodbye = "221 rblsmtpd.local\r\n"

    /// 553 for a listed client (or RBLSMTPD starting with "-"), 451 for a
    /// temporary block.
    static func code(permanent: Bool) -> String { permanent ? "553" : "451" }

    /// The refusal, one reply line per line of `text` (multiline form).
    static func refusal(code: String, text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.filter { $0 != "\r" } }
        var reply = ""
        for (k, l) in lines.enumerated() { reply += code + (k == lines.count - 1 ? " " : "-") + l + "\r\n" }
        return reply
    }
}
