// qmail-popup's AUTHORIZATION state (qmail-popup(8), RFC 1939, RFC 2449
// CAPA, RFC 2595 STLS, RFC 5034 AUTH PLAIN) as a state machine over bytes.
// It decides; PopupServer does the I/O and runs checkpassword.
import QmailCore

public struct PopupConfig {
    /// The APOP timestamp, "<pid.time@hostname>", also handed to checkpassword.
    public var timestamp: [UInt8]
    /// A certificate is configured, so STLS can be offered.
    public var tlsAvailable: Bool
    /// The connection is already encrypted (STLS done, or implicit TLS).
    public var tlsActive: Bool
    /// USER/PASS, APOP and AUTH PLAIN are refused until TLS is active
    /// (environment variable TLSREQUIRED, typically set by tcprules).
    public var plaintextNeedsTLS: Bool
    /// The peer is a cluster host whose XCLIENT (the real client's
    /// address) is believed; it is told so in the greeting and CAPA.
    public var xclientTrusted: Bool

    public init(timestamp: [UInt8], tlsAvailable: Bool = false, tlsActive: Bool = false, plaintextNeedsTLS: Bool = false,
                xclientTrusted: Bool = false) {
        self.timestamp = timestamp
        self.tlsAvailable = tlsAvailable
        self.tlsActive = tlsActive
        self.plaintextNeedsTLS = plaintextNeedsTLS
        self.xclientTrusted = xclientTrusted
    }
}

public enum PopupAction: Equatable {
    /// Send these bytes.
    case reply([UInt8])
    /// Run checkpassword with this user and password (or APOP digest).
    case login(user: [UInt8], password: [UInt8])
    /// Start TLS now (the "+OK" has been queued just before).
    case startTLS
    /// A trusted peer's XCLIENT arguments, to be checked and taken (the
    /// server answers and calls `clientChanged` when it took them).
    case xclient([UInt8])
    /// End the session (after any reply).
    case quit
}

public final class PopupSession {
    public private(set) var config: PopupConfig
    var user: [UInt8]?
    var awaitingAuthPlain = false
    /// One XCLIENT per session: the proxy names one client.
    var clientNamed = false

    public init(config: PopupConfig) {
        self.config = config
    }

    /// The timestamp announces APOP (RFC 1939), so it is left out while
    /// APOP is refused.
    public var greeting: [UInt8] {
        POP3Reply.greeting(xclient: config.xclientTrusted, timestamp: plaintextAllowed ? config.timestamp : [])
    }

    /// The peer's XCLIENT was taken.
    public func clientChanged() { clientNamed = true }

    static func send(_ reply: String) -> PopupAction { .reply(Array(reply.utf8)) }

    var plaintextAllowed: Bool { !config.plaintextNeedsTLS || config.tlsActive }

    /// After a successful TLS handshake: forget everything said before (RFC 2595).
    public func tlsStarted() {
        config.tlsActive = true
        user = nil
        awaitingAuthPlain = false
    }

    public func tooLong() -> [PopupAction] {
        awaitingAuthPlain = false
        return [PopupSession.send(POP3Reply.lineTooLong)]
    }

    public func handle(_ line: [UInt8]) -> [PopupAction] {
        if awaitingAuthPlain {
            awaitingAuthPlain = false
            return authPlain(line)
        }
        if line.contains(0) { return [PopupSession.send(POP3Reply.syntaxError)] }
        let c = POP3Command(line)
        switch c.verb.string {
        case "user":
            if !plaintextAllowed { return [PopupSession.send(POP3Reply.plaintextNeedsTLS)] }
            if c.arg.isEmpty { return [PopupSession.send(POP3Reply.syntaxError)] }
            user = c.arg
            return [PopupSession.send(POP3Reply.ok)]
        case "pass":
            if !plaintextAllowed { return [PopupSession.send(POP3Reply.plaintextNeedsTLS)] }
            guard let u = user else { return [PopupSession.send(POP3Reply.userFirst)] }
            if c.arg.isEmpty { return [PopupSession.send(POP3Reply.syntaxError)] }
            return [.login(user: u, password: c.arg)]
        case "apop":
            // checkpassword cannot tell an APOP digest from a password (it
            // gets both the same way), so APOP is a plaintext login too.
            if !plaintextAllowed { return [PopupSession.send(POP3Reply.plaintextNeedsTLS)] }
            guard let sp = c.arg.firstIndex(of: Ascii.space), sp > 0 else { return [PopupSession.send(POP3Reply.syntaxError)] }
            return [.login(user: Array(c.arg[0..<sp]), password: Array(c.arg[(sp + 1)...]))]
        case "auth":
            return auth(c.arg)
        case "stls":
            if config.tlsActive { return [PopupSession.send(POP3Reply.alreadyTLS)] }
            if !config.tlsAvailable { return [PopupSession.send(POP3Reply.noSTLS)] }
            return [PopupSession.send(POP3Reply.beginTLS), .startTLS]
        case "capa":
            return [.reply(capabilities())]
        case "quit":
            return [PopupSession.send(POP3Reply.ok), .quit]
        case "noop":
            return [PopupSession.send(POP3Reply.ok)]
        case "xclient" where config.xclientTrusted && !clientNamed:
            return [.xclient(c.arg)]
        default:
            return [PopupSession.send(POP3Reply.authorizationFirst)]
        }
    }

    public func capabilities() -> [UInt8] {
        Array(POP3Reply.popupCapabilities(plaintext: plaintextAllowed,
                                          stls: config.tlsAvailable && !config.tlsActive,
                                          xclient: config.xclientTrusted && !clientNamed).utf8)
    }

    func auth(_ arg: [UInt8]) -> [PopupAction] {
        if arg.isEmpty {
            // The mechanism list, as RFC 1734 clients ask for it.
            return [PopupSession.send(POP3Reply.authMechanisms(plain: plaintextAllowed))]
        }
        let parts = arg.split(separator: Ascii.space, maxSplits: 1, omittingEmptySubsequences: true)
        guard Array(parts[0]).caseInsensitiveEquals(Array("PLAIN".utf8)) else {
            return [PopupSession.send(POP3Reply.authUnknownType)]
        }
        if !plaintextAllowed { return [PopupSession.send(POP3Reply.plaintextNeedsTLS)] }
        if parts.count == 1 {
            awaitingAuthPlain = true
            return [PopupSession.send(POP3Reply.authContinue)]
        }
        return authPlain(Array(parts[1]))
    }

    /// RFC 4616: authzid NUL authcid NUL passwd, base64; "*" cancels;
    /// "=" is an empty initial response.
    func authPlain(_ b64: [UInt8]) -> [PopupAction] {
        if b64 == [UInt8(ascii: "*")] { return [PopupSession.send(POP3Reply.authCancelled)] }
        guard let raw = Base64.decode(b64 == [Ascii.equals] ? [] : b64) else {
            return [PopupSession.send(POP3Reply.authMalformed)]
        }
        switch SASLPlain.parse(raw) {
        case .malformed: return [PopupSession.send(POP3Reply.authMalformed)]
        case .otherIdentity: return [PopupSession.send(POP3Reply.authOtherIdentity)]
        case .login(let user, let password): return [.login(user: user, password: password)]
        }
    }
}
