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

    public init(timestamp: [UInt8], tlsAvailable: Bool = false, tlsActive: Bool = false, plaintextNeedsTLS: Bool = false) {
        self.timestamp = timestamp
        self.tlsAvailable = tlsAvailable
        self.tlsActive = tlsActive
        self.plaintextNeedsTLS = plaintextNeedsTLS
    }
}

public enum PopupAction: Equatable {
    /// Send these bytes.
    case reply([UInt8])
    /// Run checkpassword with this user and password (or APOP digest).
    case login(user: [UInt8], password: [UInt8])
    /// Start TLS now (the "+OK" has been queued just before).
    case startTLS
    /// End the session (after any reply).
    case quit
}

public final class PopupSession {
    public private(set) var config: PopupConfig
    var user: [UInt8]?
    var awaitingAuthPlain = false

    public init(config: PopupConfig) {
        self.config = config
    }

    /// The timestamp announces APOP (RFC 1939), so it is left out while
    /// APOP is refused.
    public var greeting: [UInt8] { Array("+OK ".utf8) + (plaintextAllowed ? config.timestamp : []) + [13, 10] }

    static func ok(_ s: String = "") -> PopupAction { .reply(Array("+OK \(s)\r\n".utf8)) }
    static func err(_ s: String) -> PopupAction { .reply(Array("-ERR \(s)\r\n".utf8)) }

    var plaintextAllowed: Bool { !config.plaintextNeedsTLS || config.tlsActive }
    static let needTLS = "[AUTH] plaintext login refused before STLS"

    /// After a successful TLS handshake: forget everything said before (RFC 2595).
    public func tlsStarted() {
        config.tlsActive = true
        user = nil
        awaitingAuthPlain = false
    }

    public func tooLong() -> [PopupAction] {
        awaitingAuthPlain = false
        return [PopupSession.err("line too long")]
    }

    public func handle(_ line: [UInt8]) -> [PopupAction] {
        if awaitingAuthPlain {
            awaitingAuthPlain = false
            return authPlain(line)
        }
        if line.contains(0) { return [PopupSession.err("syntax error")] }
        let c = POP3Command(line)
        switch c.verb.string {
        case "user":
            if !plaintextAllowed { return [PopupSession.err(PopupSession.needTLS)] }
            if c.arg.isEmpty { return [PopupSession.err("syntax error")] }
            user = c.arg
            return [PopupSession.ok()]
        case "pass":
            if !plaintextAllowed { return [PopupSession.err(PopupSession.needTLS)] }
            guard let u = user else { return [PopupSession.err("USER first")] }
            if c.arg.isEmpty { return [PopupSession.err("syntax error")] }
            return [.login(user: u, password: c.arg)]
        case "apop":
            // checkpassword cannot tell an APOP digest from a password (it
            // gets both the same way), so APOP is a plaintext login too.
            if !plaintextAllowed { return [PopupSession.err(PopupSession.needTLS)] }
            guard let sp = c.arg.firstIndex(of: Ascii.space), sp > 0 else { return [PopupSession.err("syntax error")] }
            return [.login(user: Array(c.arg[0..<sp]), password: Array(c.arg[(sp + 1)...]))]
        case "auth":
            return auth(c.arg)
        case "stls":
            if config.tlsActive { return [PopupSession.err("already using TLS")] }
            if !config.tlsAvailable { return [PopupSession.err("STLS not available")] }
            return [PopupSession.ok("begin TLS negotiation"), .startTLS]
        case "capa":
            return [.reply(capabilities())]
        case "quit":
            return [PopupSession.ok(), .quit]
        case "noop":
            return [PopupSession.ok()]
        default:
            return [PopupSession.err("authorization first")]
        }
    }

    public func capabilities() -> [UInt8] {
        var s = "+OK capability list follows\r\nTOP\r\nUIDL\r\n"
        if plaintextAllowed { s += "USER\r\nSASL PLAIN\r\n" }
        if config.tlsAvailable && !config.tlsActive { s += "STLS\r\n" }
        s += "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION swift-qmail\r\n.\r\n"
        return Array(s.utf8)
    }

    func auth(_ arg: [UInt8]) -> [PopupAction] {
        if arg.isEmpty {
            // The mechanism list, as RFC 1734 clients ask for it.
            return [.reply(Array((plaintextAllowed ? "+OK \r\nPLAIN\r\n.\r\n" : "+OK \r\n.\r\n").utf8))]
        }
        let parts = arg.split(separator: Ascii.space, maxSplits: 1, omittingEmptySubsequences: true)
        guard Array(parts[0]).caseInsensitiveEquals(Array("PLAIN".utf8)) else {
            return [PopupSession.err("unrecognized authentication type")]
        }
        if !plaintextAllowed { return [PopupSession.err(PopupSession.needTLS)] }
        if parts.count == 1 {
            awaitingAuthPlain = true
            return [.reply(Array("+ \r\n".utf8))]
        }
        return authPlain(Array(parts[1]))
    }

    /// RFC 4616: authzid NUL authcid NUL passwd, base64; "*" cancels;
    /// "=" is an empty initial response.
    func authPlain(_ b64: [UInt8]) -> [PopupAction] {
        if b64 == [UInt8(ascii: "*")] { return [PopupSession.err("AUTH cancelled")] }
        guard let raw = Base64.decode(b64 == [Ascii.equals] ? [] : b64) else {
            return [PopupSession.err("malformed AUTH input")]
        }
        switch SASLPlain.parse(raw) {
        case .malformed: return [PopupSession.err("malformed AUTH input")]
        case .otherIdentity: return [PopupSession.err("[AUTH] authorization identity not permitted")]
        case .login(let user, let password): return [.login(user: user, password: password)]
        }
    }
}
