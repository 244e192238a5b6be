// qmail-pop3proxy HOST: the POP3 session of a mailbox whose home host
// (issue 22) is HOST, run by checkpassword where qmail-pop3d would run.
// The client has sent its login to qmail-popup here and waits for the
// answer: we connect to HOST's POP3 server, log in there with the login
// and password checkpassword hands us on fd 3 ("login\0password\0"; never
// argv or the environment, wiped once sent), send the client HOST's "+OK",
// and copy bytes both ways until either side closes.
//
// Before the client has its "+OK", every failure (HOST unknown, down, slow,
// its TLS or certificate wrong, HOST refusing the login) exits 111, and
// qmail-popup answers "-ERR [SYS/TEMP]": the password was good here, so
// HOST refusing it means the two copies of the directory disagree (a
// replica not yet caught up); that passes, and the client must neither
// drop the password nor be counted a failed login. The log line names
// HOST and why, never the password. After the "+OK" we exit 0.
//
// Control files: clusterhosts (HOST's address), clusterpop3port (default
// 110, 995 with implicit TLS), clusterpop3tls ("stls" or "tls"),
// clusterca.pem (when present, HOST's certificate must be signed by it and
// name HOST), timeoutconnect (connecting and each reply while logging in).
// When HOST's greeting offers XCLIENT (HOST's clusterhosts lists this
// host), the client's address and port (TCPREMOTEIP, TCPREMOTEPORT) go
// first, so that HOST limits and logs the client, not this host.
// Runs as the mailbox's user; trusts its fd 3 and HOST's replies only as
// far as copying them.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailPOP3
import QmailTLS

public enum Pop3Proxy {
    public enum TLSMode: Equatable { case none, stls, implicit }

    public struct Settings: Equatable {
        public var port: Int
        public var tls: TLSMode
        public var caFile: String?
        public var timeout: Int
    }

    /// Why HOST did not take the session; the log says it.
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// The longest login that can come on fd 3 (checkpassword's limit, twice).
    static let loginLimit = 1024
    static let replyLimit = 1024

    public static func settings(_ control: Control) throws -> Settings {
        let tls: TLSMode
        switch try control.line("clusterpop3tls").map({ $0.map(Ascii.lower).string }) ?? "" {
        case "": tls = .none
        case "stls": tls = .stls
        case "tls": tls = .implicit
        case let v: throw MailFailure.temporary("control/clusterpop3tls: unknown value \(v) (want stls or tls)")
        }
        let port = try control.number("clusterpop3port", default: tls == .implicit ? 995 : 110)
        guard (1...65535).contains(port) else { throw MailFailure.temporary("control/clusterpop3port: bad port \(port)") }
        let ca = control.path("clusterca.pem")
        return Settings(port: port, tls: tls, caFile: Sys.exists(ca) ? ca : nil,
                        timeout: max(1, try control.number("timeoutconnect", default: 60)))
    }

    public static func main(_ args: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard args.count == 1, let host = args.first, !host.isEmpty else {
            Sys.warn("qmail-pop3proxy: usage: qmail-pop3proxy host (with login\\0password\\0 on fd 3)")
            return QmailExit.temporary
        }
        var input: [UInt8]
        do { input = try SecretInput.read(fd: 3, limit: loginLimit) } catch {
            Sys.warn("qmail-pop3proxy: unable to read the login on fd 3")
            return QmailExit.temporary
        }
        _ = close(3)
        defer { explicit_bzero(&input, input.count) }
        guard case (let user, var password)? = parseLogin(input) else {
            Sys.warn("qmail-pop3proxy: malformed login on fd 3 (want login\\0password\\0)")
            return QmailExit.temporary
        }
        defer { explicit_bzero(&password, password.count) }
        let home = QmailHome.current()
        let connected: (Upstream, [UInt8])
        do {
            let control = Control(home: home)
            let s = try settings(control)
            connected = try connect(host: host, settings: s, control: control) { up, offersXClient in
                // The home host believes this host's word for the client's
                // address: it counts the client's failed logins and logs it.
                let xclient = offersXClient ? XClient.command(remoteIP: Sys.getenv("TCPREMOTEIP"),
                                                              remotePort: Sys.getenv("TCPREMOTEPORT")) : nil
                return try logIn(up, user: user, password: password, xclient: xclient)
            }
        } catch {
            Sys.warn("qmail-pop3proxy: \(user.string) not relayed to home host \(host): \(error)")
            return QmailExit.temporary
        }
        let (upstream, answer) = connected
        explicit_bzero(&password, password.count)
        Sys.warn("qmail-pop3proxy: \(user.string) relayed to home host \(host) \(upstream.peer)")
        guard (try? Sys.writeAll(1, answer + [Ascii.cr, Ascii.lf])) != nil else { return 0 }
        upstream.setTimeouts(seconds: Int(Relay.idleSeconds))
        Sys.setSocketTimeouts(1, receive: Int(Relay.idleSeconds), send: Int(Relay.idleSeconds))
        Relay.run(PlainPeer(readFD: 0, writeFD: 1), upstream) { false }
        upstream.close()
        return 0
    }

    /// Tries HOST's addresses in turn until one answers, then runs `body`
    /// (the login) on that connection, telling it whether HOST's greeting
    /// offered XCLIENT; returns the connection and `body`'s result.
    static func connect<T>(host: String, settings s: Settings, control: Control,
                           body: (Upstream, Bool) throws -> T) throws -> (Upstream, T) {
        var last = "no address"
        for (ip, _) in try ClusterHosts.addresses(of: host, control: control) {
            let fd: Int32
            switch SocketAddress.connect(ip, port: s.port, timeout: s.timeout) {
            case .failure(let e):
                last = "unable to connect to \(ip):\(s.port): \(e)"
                continue
            case .success(let f): fd = f
            }
            let up = Upstream(fd: fd, peer: "\(ip):\(s.port)")
            up.setTimeouts(seconds: s.timeout)
            do {
                if s.tls == .implicit { try up.startTLS(settings: s, serverName: host) }
                let greeting = try expectOK(up, "greeting")
                if s.tls == .stls {
                    try up.send(Array("STLS\r\n".utf8))
                    try expectOK(up, "STLS")
                    try up.startTLS(settings: s, serverName: host)
                }
                return (up, try body(up, greeting.starts(with: Array((POP3Reply.okPrefix + POP3Reply.xclientMark).utf8))))
            } catch let f as Failure {
                throw Failure("\(up.peer): \(f)")
            }
        }
        throw Failure(last)
    }

    /// "login\0password\0" as two arrays of their own (so that the
    /// caller's buffer, shared with no slice, can be wiped).
    static func parseLogin(_ input: [UInt8]) -> (user: [UInt8], password: [UInt8])? {
        guard let z1 = input.firstIndex(of: 0), z1 > 0, let z2 = input[(z1 + 1)...].firstIndex(of: 0) else { return nil }
        return (Array(input[..<z1]), Array(input[(z1 + 1)..<z2]))
    }

    /// USER/PASS, or AUTH PLAIN (RFC 5034) for a login those lines cannot
    /// carry, after `xclient` (sent with the first of them: the home host
    /// pipelines); returns HOST's "+OK" line for the client. A home host
    /// that offered XCLIENT and refuses it fails the login (temporarily).
    static func logIn(_ up: Upstream, user: [UInt8], password: [UInt8], xclient: [UInt8]? = nil) throws -> [UInt8] {
        let unsayable: (UInt8) -> Bool = { $0 == Ascii.cr || $0 == Ascii.lf || $0 == 0 }
        var command: [UInt8]
        var xclientReplyDue = false
        if user.contains(where: unsayable) || password.contains(where: unsayable) || password.first == Ascii.space
            || password.isEmpty {
            var plain = [0] + user + [0] + password
            command = (xclient ?? []) + Array("AUTH PLAIN ".utf8) + Base64.encode(plain) + [Ascii.cr, Ascii.lf]
            explicit_bzero(&plain, plain.count)
            xclientReplyDue = xclient != nil
        } else {
            try up.send((xclient ?? []) + Array("USER ".utf8) + user + [Ascii.cr, Ascii.lf])
            if xclient != nil { try expectOK(up, "XCLIENT") }
            try expectOK(up, "USER")
            command = Array("PASS ".utf8) + password + [Ascii.cr, Ascii.lf]
        }
        defer { explicit_bzero(&command, command.count) }
        try up.send(command)
        if xclientReplyDue { try expectOK(up, "XCLIENT") }
        let reply = try read(up, "login")
        guard reply.starts(with: Array("+OK".utf8)) else { throw Failure("refused the login: \(printable(reply))") }
        return reply
    }

    @discardableResult
    static func expectOK(_ up: Upstream, _ what: String) throws -> [UInt8] {
        let reply = try read(up, what)
        guard reply.starts(with: Array("+OK".utf8)) else { throw Failure("\(what): \(printable(reply))") }
        return reply
    }

    /// The reply to `what`; a failure says to what.
    static func read(_ up: Upstream, _ what: String) throws -> [UInt8] {
        do { return try up.readLine() } catch { throw Failure("\(what): \(error)") }
    }

    /// A reply as a log may show it: printable ASCII, bounded.
    static func printable(_ line: [UInt8]) -> String {
        line.prefix(200).map { $0 >= 32 && $0 < 127 ? $0 : UInt8(ascii: "?") }.string
    }
}

/// The connection to the home host: a socket, TLS over it once started,
/// and what was read past the last reply line.
final class Upstream: RelayPeer {
    let fd: Int32
    let peer: String
    var tls: TLSConnection?
    var buffered: [UInt8] = []

    init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { Glibc.close(fd) }

    /// Blocking reads and writes end after `seconds` (poll cannot see
    /// what OpenSSL has buffered, so the socket itself carries the limit).
    func setTimeouts(seconds: Int) { Sys.setSocketTimeouts(fd, receive: seconds, send: seconds) }

    func startTLS(settings s: Pop3Proxy.Settings, serverName: String) throws {
        guard buffered.isEmpty else { throw Pop3Proxy.Failure("data after the STLS reply") }
        do {
            tls = try TLSConnection(connectingWith: TLSContext(clientCAFile: s.caFile), fd: fd, serverName: serverName)
        } catch {
            throw Pop3Proxy.Failure("\(error)")
        }
    }

    func send(_ bytes: [UInt8]) throws {
        if bytes.withUnsafeBytes({ relayWrite($0.baseAddress!, $0.count) }) { return }
        throw Pop3Proxy.Failure(errno == EAGAIN ? "timeout" : "connection lost")
    }

    /// One reply line without its CRLF.
    func readLine() throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let lf = buffered.firstIndex(of: Ascii.lf) {
                var line = Array(buffered[..<lf])
                buffered.removeSubrange(...lf)
                if line.last == Ascii.cr { line.removeLast() }
                return line
            }
            if buffered.count > Pop3Proxy.replyLimit { throw Pop3Proxy.Failure("reply too long") }
            errno = 0
            let n = chunk.withUnsafeMutableBytes { readRaw($0.baseAddress!, $0.count) }
            if n <= 0 { throw Pop3Proxy.Failure(errno == EAGAIN || errno == EWOULDBLOCK ? "timeout" : "connection closed") }
            buffered += chunk[0..<n]
        }
    }

    func close() { tls?.close() }

    private func readRaw(_ buf: UnsafeMutableRawPointer, _ count: Int) -> Int {
        if let tls { return tls.relayRead(buf, count) }
        while true {
            let n = Glibc.read(fd, buf, count)
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    var pollFD: Int32 { fd }
    var hasPendingInput: Bool { !buffered.isEmpty || (tls?.hasPendingInput ?? false) }

    func relayRead(_ buf: UnsafeMutableRawPointer, _ count: Int) -> Int {
        if buffered.isEmpty { return max(0, readRaw(buf, count)) }
        let n = min(count, buffered.count)
        buffered.withUnsafeBytes { buf.copyMemory(from: $0.baseAddress!, byteCount: n) }
        buffered.removeFirst(n)
        return n
    }

    func relayWrite(_ buf: UnsafeRawPointer, _ count: Int) -> Bool {
        if let tls { return tls.relayWrite(buf, count) }
        return (try? Sys.writeAll(fd, buf, count)) != nil
    }
}
