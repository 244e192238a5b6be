// qmail-remote: sends one message (descriptor 0) to one host by SMTP and
// prints, on descriptor 1, a report qmail-rspawn reads: for each recipient
// 'r' (accepted), 'h' (permanently refused) or 's' (temporarily refused)
// plus text, then the message status 'K' (delivered to every accepted
// recipient), 'Z' (try again later) or 'D' (give up), each report ending in
// a NUL byte. The exit code is always 0 once a report is written.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

public final class RemoteReport {
    public private(set) var bytes: [UInt8] = []
    public func add(_ s: String) { bytes += Array(s.utf8) }
    public func add(_ b: [UInt8]) { bytes += b }
    public func zero() { bytes.append(0) }
}

/// Raised to end delivery with a message status (Z/D/K text ready in the report).
struct RemoteDone: Error {}

public struct RemoteConfig {
    public var helohost: [UInt8] = Array("localhost".utf8)
    public var timeoutConnect = 60
    public var timeoutRemote = 1200
    public var routes = DomainMap<[UInt8]>()
    public var defaultRoute: [UInt8]? = nil
    public var queueDir = "/var/qmail/queue"
    /// control/notlshosts: hosts (smtproutes-style wildcards) never offered STARTTLS.
    public var noTLSHosts = DomainMap<Void>()
    /// DKIM signing (Remote+DKIM.swift); nil when control/dkim does not exist.
    public var dkim: RemoteSigning? = nil

    public init() {}

    public func noTLS(for host: [UInt8]) -> Bool { noTLSHosts.containsHost(host) }

    public static func load(home: QmailHome) throws -> RemoteConfig {
        let control = Control(home: home)
        var c = RemoteConfig()
        c.helohost = try control.lineWithDefault("helohost") ?? Array("localhost".utf8)
        c.timeoutConnect = max(1, try control.number("timeoutconnect"))
        c.timeoutRemote = max(1, try control.number("timeoutremote"))
        for l in try control.list("smtproutes") {
            guard let colon = l.firstIndex(of: Ascii.colon) else { continue }
            let key = Array(l[..<colon]), value = Array(l[(colon + 1)...])
            if key.isEmpty { if c.defaultRoute == nil { c.defaultRoute = value } } else { c.routes.insert(key, value) }
        }
        c.queueDir = home.queue
        c.noTLSHosts = DomainMap(lines: try control.list("notlshosts"))
        c.dkim = try RemoteSigning.load(home: home, control: control)
        return c
    }

    /// The smtproutes relay for `host` (with the login for it, if any); nil for MX delivery.
    public func route(for host: [UInt8]) -> SMTPRoute? {
        guard let v = routes.matchHost(host) ?? defaultRoute else { return nil }
        let r = SMTPRoute(value: v)
        return r.host.isEmpty ? nil : r
    }
}

/// Starts TLS on the client side of a connection (opportunistic STARTTLS).
public protocol TLSClientStarter: AnyObject {
    /// Performs the handshake on `fd`; the returned stream carries the session.
    func start(fd: Int32, serverName: [UInt8], timeout: Int) throws -> ByteStream
}

public final class Remote {
    let config: RemoteConfig
    public var tls: TLSClientStarter? = nil
    var connectedFd: Int32 = -1
    let resolver: DNSResolver
    let report = RemoteReport()
    let ipme: Set<IPAddress>
    var partner: IPAddress? = nil
    var channel: Channel? = nil
    var smtpText: [UInt8] = []
    var critical = false
    var tlsActive = false
    /// The AUTH mechanisms of the last EHLO reply, uppercased.
    var authMechanisms: Set<String> = []
    var outgoing = OutgoingMessage()

    public init(config: RemoteConfig, resolver: DNSResolver, ipme: Set<IPAddress> = IPMe.addresses()) {
        self.config = config
        self.resolver = resolver
        self.ipme = ipme
    }

    // MARK: report helpers (qmail-remote's texts)

    func fail(_ s: String) -> RemoteDone { report.add(s); report.zero(); return RemoteDone() }

    var hostText: String { partner.map { "\($0)" } ?? "?" }

    func outSMTPText() {
        if smtpText.isEmpty { return }
        report.add("Remote host said: ")
        report.add(smtpText.map { $0 == 0 ? 63 : $0 })
        smtpText = []
    }

    /// Sends QUIT without waiting and ends with `prefix` HOST `suffix`.
    func quit(_ prefix: String, _ suffix: String) -> RemoteDone {
        if let ch = channel { ch.put("QUIT\r\n"); try? ch.flush() }
        report.add("\(prefix)\(hostText)\(suffix).\n")
        outSMTPText()
        if let note = outgoing.note { report.add(note) }
        report.zero()
        return RemoteDone()
    }

    func dropped() -> RemoteDone {
        report.add("ZConnected to \(hostText) but connection died. ")
        if critical { report.add("Possible duplicate! ") }
        report.add("(#4.4.2)\n")
        report.zero()
        return RemoteDone()
    }

    /// Reads one (possibly multi-line) reply; its code, with the text kept in smtpText.
    func smtpCode() throws -> Int {
        guard let ch = channel else { throw dropped() }
        smtpText = []
        var code = 0
        var first = true
        while true {
            let got: (line: [UInt8], overflow: Bool)?
            do { got = try ch.readLine(limit: 4096) } catch { throw dropped() }
            guard let (line, _) = got else { throw dropped() }
            if smtpText.count < 10000 { smtpText += line + [Ascii.lf] }
            if first {
                // A reply without a proper code is a temporary failure, never
                // a success: after DATA that would lose the message.
                code = line.count >= 3 ? (Decimal.parse(line[0..<3]) ?? 451) : 451
                if code < 200 || code > 599 { code = 451 }
                first = false
            }
            if line.count < 4 || line[3] != Ascii.minus { break }
        }
        return code
    }

    func send(_ s: [UInt8]) throws {
        guard let ch = channel else { throw dropped() }
        ch.put(s)
        do { try ch.flush() } catch { throw dropped() }
    }

    // MARK: delivery

    /// Delivers the message on `input` to `recipients` at `host`. Returns the report.
    public func deliver(host: [UInt8], sender: [UInt8], recipients: [[UInt8]], input: Int32) -> [UInt8] {
        do {
            if let dkim = config.dkim { try prepareSignatures(input, dkim) }
            try run(host: host, sender: sender, recipients: recipients, input: input)
        } catch {
            if report.bytes.last != 0 || report.bytes.isEmpty { _ = fail("ZSystem resources temporarily unavailable. (#4.3.0)\n") }
        }
        if let s = channel?.stream as? FdStream { close(s.inFd) }
        return report.bytes
    }

    func run(host: [UInt8], sender: [UInt8], recipients: [[UInt8]], input: Int32) throws {
        var port = 25
        var addrs: [DNSResolver.MXAddress]
        let route = config.route(for: host)
        let lookupHost = route?.host ?? host
        if let p = route?.port, p > 0 { port = p }
        if let login = route?.login, login.password.isEmpty {
            throw fail("Zcontrol/smtproutes names the user \(safe(login.user)) for \(safe(lookupHost)) but no password. (#4.3.5)\n")
        }
        do {
            if route != nil {
                addrs = try resolver.ips(lookupHost).map { DNSResolver.MXAddress(preference: 0, ip: $0) }
            } else {
                addrs = try resolver.mxAddresses(lookupHost)
            }
        } catch DNSError.hard {
            throw fail("DSorry, I couldn't find any host named \(safe(lookupHost)). (#5.1.2)\n")
        } catch {
            throw fail("ZSorry, I couldn't find any host by that name. (#4.1.2)\n")
        }
        if addrs.isEmpty { throw fail("DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n") }

        // Loop detection: never deliver to ourselves or to an MX worse than
        // our own; a relay from smtproutes is trusted to be elsewhere.
        var prefMe = 100000
        for a in addrs where ipme.contains(a.ip) || ipme.contains(a.ip.unmapped) { prefMe = min(prefMe, a.preference) }
        if route != nil { prefMe = 300000 }
        let usable = addrs.filter { $0.preference < prefMe }
        if usable.isEmpty {
            throw fail("DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n")
        }
        let tcpto = TcpTo(queue: config.queueDir)
        for a in usable {
            if tcpto.isBad(a.ip) { continue }
            switch SocketAddress.connect(a.ip, port: port, timeout: config.timeoutConnect) {
            case .success(let fd):
                tcpto.record(a.ip, timedOut: false)
                partner = a.ip
                channel = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: config.timeoutRemote, capacity: 16384)
                connectedFd = fd
                // Port 465 speaks TLS from the first byte (RFC 8314).
                if port == 465, tls != nil { try startTLS(serverName: lookupHost) }
                try smtp(sender: sender, recipients: recipients, input: input, serverName: lookupHost, login: route?.login)
                return
            case .failure(let e):
                tcpto.record(a.ip, timedOut: e.errno == ETIMEDOUT)
            }
        }
        throw fail("ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n")
    }

    func safe(_ b: [UInt8]) -> String {
        String(decoding: b.map { ($0 < 33 || $0 > 126) ? 63 : $0 }, as: UTF8.self)
    }

    /// The EHLO keywords of the last reply, uppercased; the AUTH
    /// mechanisms (also from the old "AUTH=" form) go to authMechanisms.
    func extensions() -> Set<String> {
        var out: Set<String> = []
        authMechanisms = []
        for line in smtpText.split(byte: Ascii.lf).dropFirst() where line.count > 4 {
            let words = String(decoding: line[4...].map { ($0 >= 97 && $0 <= 122) ? $0 - 32 : $0 }, as: UTF8.self)
                .split(whereSeparator: { $0 == " " || $0 == "\r" }).map(String.init)
            guard let first = words.first else { continue }
            out.insert(first)
            if first == "AUTH" { authMechanisms.formUnion(words.dropFirst()) }
            if first.hasPrefix("AUTH=") { authMechanisms.formUnion([String(first.dropFirst(5))] + words.dropFirst()) }
        }
        return out
    }

    /// EHLO; nil when the server refuses it (then HELO is the way).
    func ehlo() throws -> Set<String>? {
        try send(Array("EHLO ".utf8) + config.helohost + [13, 10])
        return try smtpCode() == 250 ? extensions() : nil
    }

    /// Starts TLS on the connection (after STARTTLS's 220, or at once on port 465).
    func startTLS(serverName: [UInt8]) throws {
        guard let tls, let ch = channel else { throw dropped() }
        guard ch.bufferedCount == 0 else { throw quit("ZConnected to ", " but it sent data before TLS") }
        do {
            ch.stream = try tls.start(fd: connectedFd, serverName: serverName, timeout: config.timeoutRemote)
        } catch {
            channel = nil
            throw fail("ZConnected to \(hostText) but the TLS handshake failed. (#4.7.5)\n")
        }
        tlsActive = true
    }

    func smtp(sender: [UInt8], recipients: [[UInt8]], input: Int32, serverName: [UInt8], login: RelayLogin?) throws {
        if try smtpCode() != 220 { throw quit("ZConnected to ", " but greeting failed") }
        // qmail says HELO; EHLO only when something needs an extension:
        // SMTPUTF8 addresses, opportunistic STARTTLS, or AUTH to a relay.
        let needUTF8 = AddressParse.isEightBit(sender) || recipients.contains { AddressParse.isEightBit($0) }
        var ext: Set<String>? = nil
        if needUTF8 || tls != nil || login != nil {
            ext = try ehlo()
            if !tlsActive, let e = ext, e.contains("STARTTLS"), tls != nil {
                try send(Array("STARTTLS\r\n".utf8))
                if try smtpCode() == 220 {
                    try startTLS(serverName: serverName)
                    ext = try ehlo()
                } else if let login, !login.clearAllowed {
                    throw passwordNeedsTLS(login, because: "it refused STARTTLS")
                }
            }
        }
        if let login { try authenticate(login, ehloSucceeded: ext != nil) }
        if ext == nil {
            try send(Array("HELO ".utf8) + config.helohost + [13, 10])
            if try smtpCode() != 250 { throw quit("ZConnected to ", " but my name was rejected") }
        }
        if needUTF8 && !(ext?.contains("SMTPUTF8") ?? false) {
            if let ch = channel { ch.put("QUIT\r\n"); try? ch.flush() }
            throw fail("DConnected to \(hostText) but it does not support SMTPUTF8 addresses. (#5.6.7)\n")
        }
        try send(Array("MAIL FROM:<".utf8) + quote(sender, utf8: needUTF8) + [62] + (needUTF8 ? Array(" SMTPUTF8".utf8) : []) + [13, 10])
        var code = try smtpCode()
        if code >= 500 { throw quit("DConnected to ", " but sender was rejected") }
        if code >= 400 { throw quit("ZConnected to ", " but sender was rejected") }
        var anyAccepted = false
        for r in recipients {
            try send(Array("RCPT TO:<".utf8) + quote(r, utf8: needUTF8) + [62, 13, 10])
            code = try smtpCode()
            if code >= 500 {
                report.add("h\(hostText) does not like recipient.\n"); outSMTPText(); report.zero()
            } else if code >= 400 {
                report.add("s\(hostText) does not like recipient.\n"); outSMTPText(); report.zero()
            } else {
                report.add("r"); report.zero()
                anyAccepted = true
            }
        }
        if !anyAccepted { throw quit("DGiving up on ", "") }
        try send(Array("DATA\r\n".utf8))
        code = try smtpCode()
        if code >= 500 { throw quit("D", " failed on DATA command") }
        if code >= 400 { throw quit("Z", " failed on DATA command") }
        // Not "go ahead" (3xx): the server would read the message as commands.
        if code / 100 != 3 { throw quit("Z", " failed on DATA command") }
        try blast(input)
        code = try smtpCode()
        critical = false
        if code >= 500 { throw quit("D", " failed after I sent the message") }
        // Only a 2xx means the server took the message (qmail also took 3xx):
        // anything else waits for another try rather than risk losing it.
        if code / 100 != 2 { throw quit("Z", " failed after I sent the message") }
        throw quit("K", " accepted message")
    }

    /// qmail's quoting of the local part; with SMTPUTF8, UTF-8 bytes are
    /// ordinary characters (RFC 6531 atext) and need no quotes.
    func quote(_ address: [UInt8], utf8: Bool) -> [UInt8] {
        guard utf8, let at = address.lastIndex(of: Ascii.at) else { return Address.quote(address) }
        let local = Array(address[..<at])
        if Address.needsQuoting(local.map { $0 >= 128 ? 97 : $0 }) { return Address.quote(address) }
        return address
    }

    /// Sends the message as SMTPDataEncoder writes it (CRLF lines, leading
    /// dots doubled, no bare CR or NUL); a last line without LF is refused
    /// (SMTP cannot carry it).
    func blast(_ input: Int32) throws {
        guard let ch = channel else { throw dropped() }
        let reader = ByteReader(fd: input, capacity: 65536)
        var out: [UInt8] = []
        out.reserveCapacity(70000)
        var encoder = SMTPDataEncoder()
        var failedRead = false
        // Signatures first, then the message; what prepareSignatures read
        // from a pipe is sent from memory before the rest of the input.
        out += outgoing.signatures
        encoder.encode(outgoing.held, into: &out)
        do {
            try reader.forEachChunk { chunk in
                encoder.encode(chunk, into: &out)
                if out.count >= 65536 {
                    ch.put(out)
                    out.removeAll(keepingCapacity: true)
                    try ch.flush()
                }
            }
        } catch is ChannelError {
            throw dropped()
        } catch {
            failedRead = true
        }
        if failedRead { throw fail("ZUnable to read message. (#4.3.0)\n") }
        if encoder.insideLine { throw fail("DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n") }
        critical = true
        encoder.finish(into: &out)
        ch.put(out)
        do { try ch.flush() } catch { throw dropped() }
    }
}
