// qmail-smtpd's conversation: a state machine over command lines read from
// a Channel. Replies and their enhanced codes are qmail's; AUTH follows the
// qmail-smtpd AUTH patch (checkpassword on descriptor 3); STARTTLS, SIZE,
// SMTPUTF8 and the recipient lookup are the additions modern sites need.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailQueue

/// Starts TLS on the server side of a connection (QmailTLS provides one).
public protocol TLSServerStarter: AnyObject {
    /// Loads certificate and key; false when TLS cannot be offered after all.
    func prepare() -> Bool
    /// Performs the handshake over `stream`; the returned stream carries the session.
    func start(over stream: ByteStream, timeout: Int) throws -> ByteStream
}

/// The session ends after a reply that was already sent (a bare LF in DATA).
struct SessionEnded: Error {}

public final class SMTPServer {
    public var config: SMTPConfig
    public let channel: Channel
    public var tls: TLSServerStarter?
    /// Replaces the queue program for each message (tests and fuzzing keep it in memory).
    public var queueFactory: (() throws -> QueueSink)?
    /// Checks an AUTH login (argv, user, secret, stamp); runs checkpassword by default.
    public var checkPassword: ([String], [UInt8], [UInt8], [UInt8]) -> CheckResult = {
        CheckpasswordClient.checkpassword($0, user: $1, secret: $2, stamp: $3)
    }

    private var helo: [UInt8]?          // fakehelo: the HELO name when it differs from the remote host
    private var seenMail = false
    private var mailFrom: [UInt8] = []
    private var recipients: [[UInt8]] = []
    private var refusedSender = false   // badmailfrom: refuse each RCPT
    private var utf8 = false
    var authUser: [UInt8]? = nil
    private var authFailures = 0
    private var tlsActive = false
    private var esmtp = false
    private var queueSession: QueueSession?
    /// The sender checks of the current transaction (SMTPServer+Auth).
    var auth = AuthState()

    public init(config: SMTPConfig, channel: Channel, tls: TLSServerStarter? = nil) {
        self.config = config
        self.channel = channel
        self.tls = tls
        self.tlsActive = config.tlsWrapped
    }

    private func reply(_ s: String) { channel.put(s) }
    private func reply(_ b: [UInt8]) { channel.put(b) }

    /// Runs the session; returns the exit code.
    public func run() -> Int32 {
        reply(SMTPReply.greeting(config.greeting))
        do {
            while true {
                guard let (line, overflow) = try channel.readLine(limit: config.maxLine) else {
                    try? channel.flush()
                    return 1
                }
                if overflow { reply(SMTPReply.lineTooLong); continue }
                if try !dispatch(line) {
                    try channel.flush()
                    return 0
                }
            }
        } catch ChannelError.timeout {
            reply(SMTPReply.timeout)
            try? channel.flush()
            return 1
        } catch {
            return 1
        }
    }

    /// Handles one command; false after QUIT.
    func dispatch(_ line: [UInt8]) throws -> Bool {
        if line.contains(0) { reply(SMTPReply.nulInCommand); return true }
        let sp = line.firstIndex(of: Ascii.space) ?? line.count
        let verb = String(decoding: line[0..<sp].map(Ascii.lower), as: UTF8.self)
        var a = sp
        while a < line.count && line[a] == Ascii.space { a += 1 }
        let arg = Array(line[a...])
        switch verb {
        case "quit": reply(SMTPReply.goodbye(config.greeting)); return false
        case "helo": doHelo(arg, extended: false)
        case "ehlo": doHelo(arg, extended: true)
        case "rset": resetTransaction(); reply(SMTPReply.flushed)
        case "noop": reply(SMTPReply.ok)
        case "vrfy": reply(SMTPReply.vrfy)
        case "help": reply(SMTPReply.help)
        case "mail": doMail(arg)
        case "rcpt": doRcpt(arg)
        case "data": return try doData()
        case "auth":
            try doAuth(arg)
            if authFailures >= config.maxAuthFailures { return false }
        case "starttls": try doStartTLS(arg)
        default: reply(SMTPReply.unimplemented)
        }
        return true
    }

    private func resetTransaction() {
        seenMail = false
        mailFrom = []
        recipients = []
        refusedSender = false
        utf8 = false
        auth = AuthState()
    }

    private var authOffered: Bool {
        config.authHostname != nil && authUser == nil && (tlsActive || !config.authNeedsTLS)
    }

    private func doHelo(_ arg: [UInt8], extended: Bool) {
        resetTransaction()
        helo = config.remoteHost.caseInsensitiveEquals(arg) ? nil : arg
        esmtp = extended
        guard extended else { reply(SMTPReply.helo(config.greeting)); return }
        reply(SMTPReply.ehloFirst(config.greeting))
        reply(SMTPReply.ehloPipelining8BitMIME)
        reply(SMTPReply.ehloSize(config.databytes))
        if tls != nil && !tlsActive { reply(SMTPReply.ehloStartTLS) }
        if authOffered {
            var mechs: [String] = []
            if config.authPlainLogin { mechs += ["LOGIN", "PLAIN"] }
            if config.authCram { mechs.append("CRAM-MD5") }
            let m = mechs.joined(separator: " ")
            reply(SMTPReply.ehloAuth(m))
        }
        reply(SMTPReply.ehloLast)
    }

    private func doMail(_ arg: [UInt8]) {
        if config.authRequired && authUser == nil {
            reply(SMTPReply.authRequired); return
        }
        // MAIL inside a transaction starts a new one, as in qmail (RFC 5321
        // 3.3), and a refused MAIL leaves none: the RCPTs and DATA that a
        // pipelining client sent after it never join the earlier message.
        resetTransaction()
        guard let parsed = AddressParse.parse(arg) else { reply(SMTPReply.addressSyntax); return }
        let wantsUTF8 = parsed.parameters.contains { $0.key == "SMTPUTF8" }
        if AddressParse.isEightBit(parsed.address) && !wantsUTF8 {
            reply(SMTPReply.needsSMTPUTF8); return
        }
        if let size = parsed.parameter("SIZE") {
            guard let n = Decimal.scanPrefix(size) else { reply(SMTPReply.badSize); return }
            if config.databytes > 0 && n > config.databytes {
                reply(SMTPReply.tooBig); return
            }
        }
        if let refusal = spfCheck(sender: parsed.address, helo: helo ?? config.remoteHost) {
            reply(refusal); return
        }
        refusedSender = config.badMailFrom.matches(parsed.address)
        mailFrom = parsed.address
        utf8 = wantsUTF8
        seenMail = true
        reply(SMTPReply.ok)
    }

    private func doRcpt(_ arg: [UInt8]) {
        guard seenMail else { reply(SMTPReply.mailFirst); return }
        guard var parsed = AddressParse.parse(arg) else { reply(SMTPReply.addressSyntax); return }
        if refusedSender { reply(SMTPReply.badMailFrom); return }
        if AddressParse.isEightBit(parsed.address) && !utf8 {
            reply(SMTPReply.needsSMTPUTF8); return
        }
        if recipients.count >= config.maxRecipients { reply(SMTPReply.tooManyRecipients); return }
        if parsed.address.isEmpty { reply(SMTPReply.addressSyntax); return }
        if let at = parsed.address.lastIndex(of: Ascii.at), at + 1 < parsed.address.count, parsed.address[at + 1] == 91 {
            if config.ipme == nil { config.ipme = IPMe.addresses() }
            parsed.address = AddressParse.applyLocalIPHost(parsed.address, localIPHost: config.localIPHost, ipme: config.ipme ?? [])
        }
        let addr = parsed.address
        // Judged where qmail-send will deliver it: after each percenthack
        // step ("u%far%ours@ours" goes to u@far when ours is listed).
        var target = addr
        if let hack = config.percentHack {
            let r = hack.rewrite(addr)
            if r.steps > 0 { target = r.address }
        }
        if let verdict = srsRefusal(target) { reply(verdict); return }
        do {
            if let relay = config.relayClient {
                if try config.rcptHosts.accepts(target), let verdict = checkRecipient(target) { reply(verdict); return }
                recipients.append(addr + relay)
            } else {
                guard try config.rcptHosts.accepts(addr), try config.rcptHosts.acceptsWithoutRelay(target) else {
                    reply(SMTPReply.notInRcpthosts); return
                }
                if let verdict = checkRecipient(target) { reply(verdict); return }
                if let refusal = authRecipient(target) { reply(refusal); return }
                if let verdict = greylistCheck(sender: mailFrom, recipient: target, authenticated: authUser != nil) {
                    reply(verdict); return
                }
                recipients.append(addr)
            }
        } catch {
            reply(SMTPReply.controlsUnreadable); return
        }
        reply(SMTPReply.ok)
    }

    /// Asks the recipient lookup program; nil when the recipient is fine.
    private func checkRecipient(_ addr: [UInt8]) -> String? {
        guard let prog = config.rcptCheck, !prog.isEmpty, !addr.isEmpty else { return nil }
        switch CheckpasswordClient.run(prog + [addr.string], fd3: nil, timeout: Double(config.rcptCheckTimeout)) {
        case .ended(.exited(0)): return nil
        case .ended(.exited(QmailExit.permanent)): return SMTPReply.noMailbox
        default: return SMTPReply.recipientLookupFailed
        }
    }

    /// The queue for the next message: the connection's queue session for
    /// our own qmail-queue, else one queue program for this message.
    private func openQueue() throws -> QueueSink {
        if let make = queueFactory { return try make() }
        if config.queueSession && queueSession == nil { queueSession = QueueSession(program: config.queueProgram) }
        return try QueueSession.open(queueSession, program: config.queueProgram)
    }

    private func doData() throws -> Bool {
        guard seenMail else { reply(SMTPReply.mailFirst); return true }
        guard !recipients.isEmpty else { reply(SMTPReply.rcptFirst); return true }
        seenMail = false
        let qq: QueueSink
        do { qq = try openQueue() } catch {
            reply(SMTPReply.queueUnavailable); return true
        }
        reply("354 go ahead\r\n")
        // qmail writes "SMTP"; the RFC 3848/6531 names say what else was used.
        var proto = "SMTP"
        if utf8 || tlsActive || authUser != nil {
            proto = (utf8 ? "UTF8SMTP" : "ESMTP") + (tlsActive ? "S" : "") + (authUser != nil ? "A" : "")
        }
        let received = Received.line(protocol: proto, local: config.local, remoteIP: config.remoteIP,
                                     remoteHost: config.remoteHost, remoteInfo: authUser ?? config.remoteInfo, helo: helo)
        // DKIM needs the whole message before the Authentication-Results
        // field above it can be written: hold it (bounded) while checking.
        var holding = holdsMessage
        let holdLimit = config.databytes > 0 ? config.databytes + 1 : config.auth.holdLimit
        if !holding {
            if let field = auth.receivedSPF { qq.put(field) }
            qq.put(received)
        }
        var rx = DataReceiver(databytes: config.databytes)
        var outcome = DataReceiver.Outcome.more
        let ended: Bool
        do {
            ended = try channel.scan { chunk in
                let r = rx.feed(chunk)
                outcome = r.outcome
                if holding && rx.output.count > holdLimit {
                    holding = false
                    qq.put(authFieldsUnchecked())
                    qq.put(received)
                }
                if !holding && rx.output.count >= 65536 { qq.put(rx.output); rx.output.removeAll(keepingCapacity: true) }
                return (r.consumed, r.outcome != .more)
            }
        } catch {
            // Timeout or a broken connection: queue nothing, then report.
            qq.fail()
            _ = qq.close()
            throw error
        }
        if !ended || outcome == .strayNewline {
            qq.fail()
            _ = qq.close()
            if ended {
                reply(SMTPReply.bareLF)
                try? channel.flush()
            }
            throw SessionEnded()
        }
        let tooManyHops = rx.hops >= 100
        var refusal: String? = nil
        if holding && !tooManyHops && !rx.overflowed {
            let v = authVerdict(rx.output)
            refusal = v.refusal
            qq.put(v.fields)
            qq.put(received)
            qq.put(v.message)
        } else {
            qq.put(rx.output)
        }
        if tooManyHops || rx.overflowed || refusal != nil { qq.fail() }
        qq.from(mailFrom)
        for r in recipients { qq.to(r) }
        let failure = qq.close()
        let pid = qq.queuePid
        recipients = []
        if let refusal {
            reply(refusal)
        } else if failure == nil && !tooManyHops && !rx.overflowed {
            reply(SMTPReply.accepted(at: Sys.now(), qp: pid))
        } else if tooManyHops {
            reply(SMTPReply.looping)
        } else if rx.overflowed {
            reply(SMTPReply.tooBig)
        } else if let f = failure {
            reply(SMTPReply.failure(f))
        }
        return true
    }

    // MARK: AUTH

    private func readAuthLine() throws -> [UInt8]? {
        guard let (line, overflow) = try channel.readLine(limit: config.maxLine) else { throw ChannelError.closed }
        if overflow { return nil }
        return line
    }

    private func doAuth(_ arg: [UInt8]) throws {
        guard config.authHostname != nil else { reply(SMTPReply.unimplemented); return }
        if authUser != nil { reply(SMTPReply.alreadyAuthenticated); return }
        if seenMail { reply(SMTPReply.authInTransaction); return }
        if config.authNeedsTLS && !tlsActive {
            reply(SMTPReply.authNeedsTLS); return
        }
        let words = arg.split(separator: Ascii.space).map(Array.init)
        guard let mech = words.first.map({ String(decoding: $0.map(Ascii.lower), as: UTF8.self) }) else {
            reply(SMTPReply.authTypeUnknown); return
        }
        let initial = words.count > 1 ? words[1] : nil
        var user: [UInt8] = []
        var secret: [UInt8] = []
        var stamp: [UInt8] = []
        switch mech {
        case "login" where config.authPlainLogin:
            var u = initial
            if u == nil {
                reply("334 VXNlcm5hbWU6\r\n")
                u = try readAuthLine()
            }
            guard let ul = u, ul != [42] else { reply(SMTPReply.authCancelled); return }
            guard let ud = Base64.decode(ul, padding: .optional), !ud.isEmpty else { reply(SMTPReply.authMalformed); return }
            reply("334 UGFzc3dvcmQ6\r\n")
            guard let pl = try readAuthLine(), pl != [42] else { reply(SMTPReply.authCancelled); return }
            guard let pd = Base64.decode(pl, padding: .optional), !pd.isEmpty else { reply(SMTPReply.authMalformed); return }
            user = ud; secret = pd
        case "plain" where config.authPlainLogin:
            var r = initial
            if r == nil {
                reply("334 \r\n")
                r = try readAuthLine()
            }
            guard let rl = r, rl != [42] else { reply(SMTPReply.authCancelled); return }
            guard let d = Base64.decode(rl, padding: .optional) else { reply(SMTPReply.authMalformed); return }
            switch SASLPlain.parse(d) {
            case .malformed: reply(SMTPReply.authMalformed); return
            case .otherIdentity:
                reply(SMTPReply.authzNotLogin); return
            case .login(let u, let p): user = u; secret = p
            }
        case "cram-md5" where config.authCram:
            let challenge = Array("<\(getpid()).\(Sys.now())@".utf8) + (config.authHostname ?? []) + [62]
            reply("334 "); reply(Base64.encode(challenge)); reply("\r\n")
            guard let rl = try readAuthLine(), rl != [42] else { reply(SMTPReply.authCancelled); return }
            guard let d = Base64.decode(rl, padding: .optional), let sp = d.lastIndex(of: Ascii.space), sp > 0 else {
                reply(SMTPReply.authMalformed); return
            }
            user = Array(d[..<sp]); secret = challenge; stamp = Array(d[(sp + 1)...])
        default:
            reply(SMTPReply.authTypeUnimplemented); return
        }
        // fd 3 is NUL-separated: a NUL in any field would shift or cut the ones after it.
        if user.contains(0) || secret.contains(0) || stamp.contains(0) { reply(SMTPReply.authMalformed); return }
        try channel.flush()
        let verdict = config.authHelperFd.map { AuthSeparation.ask(fd: $0, user: user, secret: secret, stamp: stamp) }
            ?? checkPassword(config.checkpassword, user, secret, stamp)
        switch verdict {
        case .ok:
            authUser = user
            if config.relayClient == nil { config.relayClient = [] }
            // The queue program (a content filter) learns of the login from
            // its environment: SMTPAUTHUSER, and TCPREMOTEINFO as the AUTH
            // patch sets it. A session started before the login has the old
            // environment, so the next message starts a fresh one.
            if !user.contains(0) {
                setenv("SMTPAUTHUSER", user.string, 1)
                setenv("TCPREMOTEINFO", user.string, 1)
            }
            queueSession = nil
            reply(SMTPReply.authOK)
        case .rejected:
            authFailures += 1
            // (qmail-smtpd-auth waits before it answers, where a
            // qmail-smtpd taken over cannot skip the wait.)
            if config.authFailDelay > 0 && config.authHelperFd == nil { sleep(config.authFailDelay) }
            if authFailures >= config.maxAuthFailures {
                reply(SMTPReply.authTooManyFailures)
            } else {
                reply(SMTPReply.authFailed)
            }
        case .temporary:
            reply(SMTPReply.authTemporary)
        case .limited:
            reply(SMTPReply.authLockedOut)
        }
    }

    // MARK: STARTTLS

    private func doStartTLS(_ arg: [UInt8]) throws {
        guard let tls, !tlsActive else { reply(SMTPReply.unimplemented); return }
        if !arg.isEmpty { reply(SMTPReply.syntaxError); return }
        guard tls.prepare() else { reply(SMTPReply.tlsUnavailable); return }
        reply(SMTPReply.tlsReady)
        try channel.flush()
        // Anything the client sent after STARTTLS in plaintext must not be
        // taken as if it came over TLS (CVE-2011-0411 style injection).
        channel.discardBuffered()
        do {
            channel.stream = try tls.start(over: channel.stream, timeout: config.timeout)
        } catch {
            throw SessionEnded()  // a failed handshake ends the session: run() returns 1
        }
        tlsActive = true
        resetTransaction()
        helo = nil
    }
}
