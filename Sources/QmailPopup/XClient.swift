// XCLIENT for POP3, as Dovecot's proxies send it: a front host that relays
// a client's session (qmail-pop3proxy, or Dovecot with
// login_trusted_networks on the other side) tells the home host who the
// client really is, so that the home host's failed-login limits, its
// checkpassword and its log see the client's address, not the front host's.
//
//   XCLIENT ADDR=192.0.2.7 PORT=50123
//
// qmail-popup takes it only before login and only from a peer whose
// address control/clusterhosts lists (TCPREMOTEIP), and tells such a peer
// so in its greeting ("+OK [XCLIENT] <timestamp>", where Dovecot's proxy
// looks for it) and in CAPA. From any other peer it is an unknown command.
// ADDR (required) is an IPv4 or IPv6 literal, PORT (optional) a decimal
// port; other KEY=VALUE attributes (Dovecot's SESSION, TTL, FORWARD) are
// ignored; anything else, a repeated ADDR or PORT, or a bad value refuses
// the whole command and changes nothing.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

public enum XClient {
    public struct Client: Equatable {
        public var address: IPAddress
        public var port: Int?
    }

    /// The arguments of an XCLIENT command; nil when malformed.
    public static func parse(_ arg: [UInt8]) -> Client? {
        var address: IPAddress?
        var port: Int?
        var sawPort = false
        let fields = arg.split(separator: Ascii.space, omittingEmptySubsequences: true)
        for f in fields {
            guard let eq = f.firstIndex(of: Ascii.equals), eq > f.startIndex else { return nil }
            let key = Array(f[..<eq]).lowercasedASCII()
            let value = Array(f[(eq + 1)...])
            guard key.allSatisfy(isKeyByte), value.allSatisfy({ $0 > 32 && $0 < 127 }) else { return nil }
            switch key.string {
            case "addr":
                // Only the characters of a literal, and inet_pton's strict
                // forms (no zone, no leading zeros, no brackets).
                guard address == nil, !value.isEmpty, value.count <= 45,
                      value.allSatisfy({ isHexDigit($0) || $0 == Ascii.colon || $0 == Ascii.dot }),
                      let ip = IPAddress(value.string) else { return nil }
                address = ip.unmapped
            case "port":
                guard !sawPort, value.count <= 5, let p = Decimal.parse(value), (1...65535).contains(p) else { return nil }
                sawPort = true
                port = p
            default:
                continue
            }
        }
        guard let address else { return nil }
        return Client(address: address, port: port)
    }

    /// The command qmail-pop3proxy sends for the client tcpserver (or an
    /// earlier XCLIENT) described in TCPREMOTEIP and TCPREMOTEPORT; nil
    /// without a valid address.
    public static func command(remoteIP: String?, remotePort: String?) -> [UInt8]? {
        guard let ip = remoteIP.flatMap({ IPAddress($0) })?.unmapped else { return nil }
        var line = "XCLIENT ADDR=\(ip)"
        if let p = remotePort.flatMap({ Decimal.parse(Array($0.utf8)) }), (1...65535).contains(p) { line += " PORT=\(p)" }
        return Array((line + "\r\n").utf8)
    }

    /// Whether `remoteIP` (TCPREMOTEIP) is a cluster host's address in
    /// control/clusterhosts, whose XCLIENT is believed.
    public static func trusts(_ remoteIP: String?, control: Control) -> Bool {
        guard let ip = remoteIP.flatMap({ IPAddress($0) })?.unmapped else { return false }
        return ClusterHosts.listedAddresses(control: control).contains(ip)
    }

    /// From now on the session's client is `c`: what checkpassword, the
    /// failed-login limits and the log line read. The front host's name
    /// and ident answer do not describe the client, so they go.
    public static func apply(_ c: Client) {
        setenv("TCPREMOTEIP", c.address.description, 1)
        if let p = c.port { setenv("TCPREMOTEPORT", String(p), 1) } else { unsetenv("TCPREMOTEPORT") }
        unsetenv("TCPREMOTEHOST")
        unsetenv("TCPREMOTEINFO")
    }

    static func isKeyByte(_ b: UInt8) -> Bool {
        (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
    }

    static func isHexDigit(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 70) || (b >= 97 && b <= 102)
    }
}
