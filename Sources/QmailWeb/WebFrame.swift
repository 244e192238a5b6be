// What crosses between qmail-webadmin's two processes, over their
// socketpair: the network process (unprivileged: TLS, HTTP) hands each
// request to the root helper as one frame, and gets one frame back. A
// frame is a netstring holding a fixed number of netstrings; every field
// has a size limit and a character set, checked by both sides, so the
// helper never parses HTTP and a frame it cannot read is an attack.
//   request: method, path, query, Cookie header, client IP, body
//   answer:  status, headers (name, value, name, value, ...), body
import QmailCore
import QmailNet

/// One frame off the socketpair.
enum FrameRead {
    case content([UInt8])
    /// The other side closed the socket between two frames.
    case end
    /// Anything else: bad syntax, too long, cut short, too slow.
    case malformed
}

/// Reads one frame ("N:content,") of at most `limit` content bytes.
func readFrame(_ ch: Channel, limit: Int) -> FrameRead {
    do {
        guard var c = try ch.byte() else { return .end }
        var n = 0
        var digits = 0
        while c != Ascii.colon {
            guard Ascii.isDigit(c), digits < 10 else { return .malformed }
            n = n * 10 + Int(c - 48)
            digits += 1
            guard n <= limit, let next = try ch.byte() else { return .malformed }
            c = next
        }
        var out: [UInt8] = []
        out.reserveCapacity(n)
        guard digits > 0, try ch.read(exactly: n, into: { out += $0 }), try ch.byte() == 44 else { return .malformed }
        return .content(out)
    } catch {
        return .malformed
    }
}

/// One HTTP request as the helper sees it.
public struct WebRequest: Equatable, Sendable {
    public var method: String
    public var path: String
    public var query: String
    public var cookie: String
    public var ip: String
    public var body: [UInt8]

    static let maxMethod = 16
    static let maxText = 8192
    static let maxIP = 64
    /// The largest frame a request can make.
    static let maxFrame = maxMethod + 3 * maxText + maxIP + WebApp.maxBody + 6 * 14

    public init(method: String, path: String, query: String = "", cookie: String = "", ip: String, body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.cookie = cookie
        self.ip = ip
        self.body = body
    }

    /// Whether every field is within its limits: what the network process
    /// checks before sending, and the helper after reading.
    public var isValid: Bool {
        let m = Array(method.utf8), p = Array(path.utf8), q = Array(query.utf8), c = Array(cookie.utf8), a = Array(ip.utf8)
        return !m.isEmpty && m.count <= Self.maxMethod && m.allSatisfy { (65...90).contains($0) }
            && p.first == Ascii.slash && p.count <= Self.maxText && p.allSatisfy(Self.visible)
            && q.count <= Self.maxText && q.allSatisfy(Self.visible)
            && c.count <= Self.maxText && c.allSatisfy { Self.visible($0) || $0 == Ascii.space }
            && a.count <= Self.maxIP && a.allSatisfy { Ascii.isDigit($0) || (97...102).contains(Ascii.lower($0)) || $0 == Ascii.dot || $0 == Ascii.colon }
            && body.count <= WebApp.maxBody
    }

    /// Printable ASCII, no blank: what a path, query or cookie holds.
    static func visible(_ c: UInt8) -> Bool { c > 32 && c < 127 }

    public func encode() -> [UInt8] {
        Netstring.encode([method, path, query, cookie, ip].flatMap { Netstring.encode(Array($0.utf8)) } + Netstring.encode(body))
    }

    /// The request in a frame's content; nil unless it is exactly six
    /// fields, each within its limits.
    public static func decode(_ content: [UInt8]) -> WebRequest? {
        guard content.count <= maxFrame, let f = Netstring.split(content), f.count == 6 else { return nil }
        let r = WebRequest(method: f[0].string, path: f[1].string, query: f[2].string, cookie: f[3].string, ip: f[4].string, body: f[5])
        // the text fields are ASCII, so .string kept every byte
        guard r.isValid, zip(f[0..<5], [r.method, r.path, r.query, r.cookie, r.ip]).allSatisfy({ $0.0.count == $0.1.utf8.count }) else { return nil }
        return r
    }
}

/// The helper's answer: what the network process turns into the response.
public struct WebAnswer: Equatable, Sendable {
    public struct Status: Equatable, Sendable {
        public let code: Int
        static let ok = Status(code: 200)
        static let seeOther = Status(code: 303)
        static let badRequest = Status(code: 400)
        static let unauthorized = Status(code: 401)
        static let forbidden = Status(code: 403)
        static let notFound = Status(code: 404)
        static let contentTooLarge = Status(code: 413)
        static let tooManyRequests = Status(code: 429)
        static let internalError = Status(code: 500)
        static let serviceUnavailable = Status(code: 503)
    }

    public var status: Status
    /// In order; a name may repeat (Set-Cookie).
    public var headers: [(String, String)]
    public var body: [UInt8]

    static let maxHeaders = 32
    static let maxBody = 32 << 20
    static let maxFrame = maxBody + maxHeaders * 2 * (WebRequest.maxText + 14) + 32

    public init(status: Status, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (a: WebAnswer, b: WebAnswer) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.map { $0.0 } == b.headers.map { $0.0 }
            && a.headers.map { $0.1 } == b.headers.map { $0.1 }
    }

    var isValid: Bool {
        (100...599).contains(status.code) && headers.count <= Self.maxHeaders && body.count <= Self.maxBody
            && headers.allSatisfy { h in
                let n = Array(h.0.utf8), v = Array(h.1.utf8)
                return !n.isEmpty && n.count <= 64 && n.allSatisfy { Ascii.isDigit($0) || (97...122).contains(Ascii.lower($0)) || $0 == Ascii.minus }
                    && v.count <= WebRequest.maxText && v.allSatisfy { $0 >= 32 && $0 < 127 }
            }
    }

    public func encode() -> [UInt8] {
        Netstring.encode(Netstring.encode(Array(String(status.code).utf8))
            + Netstring.encode(headers.flatMap { Netstring.encode(Array($0.0.utf8)) + Netstring.encode(Array($0.1.utf8)) })
            + Netstring.encode(body))
    }

    public static func decode(_ content: [UInt8]) -> WebAnswer? {
        guard let f = Netstring.split(content), f.count == 3, f[0].count <= 3, let code = Decimal.parse(f[0]),
              let h = Netstring.split(f[1]), h.count % 2 == 0 else { return nil }
        var headers: [(String, String)] = []
        var i = 0
        while i < h.count { headers.append((h[i].string, h[i + 1].string)); i += 2 }
        let a = WebAnswer(status: Status(code: code), headers: headers, body: f[2])
        return a.isValid ? a : nil
    }
}
