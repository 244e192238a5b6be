// The HTTP/1.1 of qmail-webadmin's network process (RFC 9112), server side:
// what browsers and scripts send to a page of forms. One request at a time
// per connection, kept alive as HTTP/1.1 asks; a body by Content-Length or
// chunked, up to the pages' limit; "100 Continue" for clients that wait for
// it. Anything else gets its error status and the connection closes: a
// request line or head too long (414, 431), a folded or malformed header,
// conflicting or empty lengths or both a length and chunking (400: the
// ways one request is smuggled inside another), another transfer coding (501),
// another HTTP version (505), a body over the limit (413).
//
// Written here, not taken from a library: SwiftNIO and Hummingbird, with
// the Foundation and the TLS library they bring, made qmail-webadmin a
// 30 MB file of its own, half of what HOME/bin may hold in all; this part
// of HTTP is small, and the pages behind it already never see HTTP.
import QmailCore
import QmailNet

/// One request, as far as the network process needs it.
struct HTTPRequest: Equatable {
    var method: String
    /// The path, and the query without its "?".
    var path: String
    var query: String
    /// The Cookie headers, joined with "; ".
    var cookie: String
    /// Whether the connection may carry another request after this one.
    var keepAlive: Bool
    var body: [UInt8]
}

/// What reading a request came to.
enum HTTPRead: Equatable {
    case request(HTTPRequest)
    /// The client closed (or went quiet) between requests.
    case end
    /// A request that cannot be served: answer `status`, then close.
    case refused(status: Int)
}

struct HTTPReader {
    let ch: Channel
    let maxBody: Int
    /// The request line: a path and query of WebRequest's size, and room
    /// for the method and version.
    static let maxLine = WebRequest.maxText + 64
    static let maxHeaders = 64
    static let maxHeadBytes = 32 << 10

    /// Reads one request. `sendContinue` is called before a body the client
    /// holds back until it hears "100 Continue". Throws what the channel
    /// throws (a timeout, a broken connection).
    func read(sendContinue: () throws -> Void) throws -> HTTPRead {
        // a few empty lines may come before a request line (RFC 9112 2.2)
        var line: [UInt8] = []
        for _ in 0..<4 {
            guard let (l, overflow) = try ch.readLine(limit: Self.maxLine) else { return .end }
            if overflow { return .refused(status: 414) }
            line = l
            if !line.isEmpty { break }
        }
        let parts = line.split(separator: Ascii.space, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(Self.isToken) else { return .refused(status: 400) }
        let version = Self.text(parts[2])
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            return .refused(status: version.hasPrefix("HTTP/") ? 505 : 400)
        }
        guard let (path, query) = Self.target(parts[1]) else { return .refused(status: 400) }

        var headers: [(name: String, value: [UInt8])] = []
        var headBytes = line.count
        while true {
            guard let (h, overflow) = try ch.readLine(limit: Self.maxHeadBytes) else { return .end }
            headBytes += h.count + 2
            if overflow || headBytes > Self.maxHeadBytes || headers.count >= Self.maxHeaders { return .refused(status: 431) }
            if h.isEmpty { break }
            guard let header = Self.header(h) else { return .refused(status: 400) }
            headers.append(header)
        }
        func values(_ name: String) -> [[UInt8]] { headers.filter { $0.name == name }.map(\.value) }

        let http11 = version == "HTTP/1.1"
        if http11 && values("host").count != 1 { return .refused(status: 400) }
        let connection = values("connection").flatMap { Self.list($0) }
        let keepAlive = http11 ? !connection.contains("close") : connection.contains("keep-alive")
        // an empty Cookie header adds nothing (not a "; " at the end)
        let cookie = values("cookie").filter { !$0.isEmpty }.map { Self.text($0) }.joined(separator: "; ")

        // a length or a coding field with nothing in it is refused, not read as no body
        let lengthFields = values("content-length"), codingFields = values("transfer-encoding")
        if (lengthFields + codingFields).contains(where: { Self.list($0).isEmpty }) { return .refused(status: 400) }
        let lengths = lengthFields.flatMap { Self.list($0) }
        let codings = codingFields.flatMap { Self.list($0) }
        var body: [UInt8] = []
        if !codings.isEmpty {
            guard lengths.isEmpty, http11 else { return .refused(status: 400) }
            guard codings == ["chunked"] else { return .refused(status: 501) }
            if Self.expectsContinue(values("expect")) { try sendContinue() }
            do {
                guard let b = try readChunked() else { return .refused(status: 413) }
                body = b
            } catch is BadChunk {
                return .refused(status: 400)
            }
        } else if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), first.utf8.count <= 12, first.utf8.allSatisfy(Ascii.isDigit),
                  let n = Int(first) else { return .refused(status: 400) }
            guard n <= maxBody else { return .refused(status: 413) }
            if n > 0 && http11 && Self.expectsContinue(values("expect")) { try sendContinue() }
            body.reserveCapacity(n)
            guard try ch.read(exactly: n, into: { body += $0 }) else { return .end }
        }
        return .request(HTTPRequest(method: Self.text(parts[0]), path: path, query: query, cookie: cookie,
                                    keepAlive: keepAlive, body: body))
    }

    /// A chunk line, chunk or trailer that breaks the chunked syntax.
    struct BadChunk: Error {}

    /// A chunked body (RFC 9112 7.1), its trailer read and dropped; nil when
    /// it grows past the limit.
    func readChunked() throws -> [UInt8]? {
        var body: [UInt8] = []
        while true {
            guard let (l, overflow) = try ch.readLine(limit: 1024), !overflow else { throw BadChunk() }
            let digits = l.prefix { $0 != 59 && $0 != Ascii.space && $0 != Ascii.tab }
            // hex digits alone: Int(_:radix:) would also take a sign ("-1" a chunk of nothing)
            guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy({ Ascii.isDigit($0) || (97...102).contains(Ascii.lower($0)) }),
                  let size = Int(Self.text(digits), radix: 16) else { throw BadChunk() }
            // then nothing, or a chunk extension (";name=value"), after optional blanks
            let rest = l[digits.count...].drop { $0 == Ascii.space || $0 == Ascii.tab }
            guard rest.isEmpty || rest.first == 59 else { throw BadChunk() }
            if size == 0 { break }
            guard body.count + size <= maxBody else { return nil }
            guard try ch.read(exactly: size, into: { body += $0 }),
                  let (end, _) = try ch.readLine(limit: 2), end.isEmpty else { throw BadChunk() }
        }
        // the trailer section, up to its empty line
        var trailer = 0
        while let (l, _) = try ch.readLine(limit: 1024), !l.isEmpty {
            trailer += 1
            guard trailer < Self.maxHeaders else { throw BadChunk() }
        }
        return body
    }

    /// The request target's path and query: origin form ("/path?query"),
    /// or absolute form ("https://host/path?query"), whose host is
    /// Host's business. Percent escapes stay as they came.
    static func target(_ t: ArraySlice<UInt8>) -> (String, String)? {
        var rest = t
        if rest.first != Ascii.slash {
            let s = Self.text(rest).lowercased()
            guard s.hasPrefix("https://") || s.hasPrefix("http://") else { return nil }
            rest = rest.dropFirst(s.hasPrefix("https://") ? 8 : 7)
            guard let slash = rest.firstIndex(of: Ascii.slash) else { return ("/", "") }
            rest = rest[slash...]
        }
        guard rest.allSatisfy({ $0 > 32 && $0 < 127 }) else { return nil }
        if let q = rest.firstIndex(of: 63) {
            return (Self.text(rest[..<q]), Self.text(rest[(q + 1)...]))
        }
        return (Self.text(rest), "")
    }

    /// "Name: value": the name in lower case, the value without the blanks
    /// around it. No blank before the colon, no folded line (RFC 9112 5).
    static func header(_ h: [UInt8]) -> (name: String, value: [UInt8])? {
        guard let colon = h.firstIndex(of: Ascii.colon), colon > 0, h[..<colon].allSatisfy(isToken) else { return nil }
        let value = h[(colon + 1)...].drop { $0 == Ascii.space || $0 == Ascii.tab }
        let trimmed = value.reversed().drop { $0 == Ascii.space || $0 == Ascii.tab }.reversed()
        guard trimmed.allSatisfy({ $0 == Ascii.tab || ($0 >= 32 && $0 != 127) }) else { return nil }
        return (Self.text(h[..<colon]).lowercased(), Array(trimmed))
    }

    /// A comma-separated header value's items, lower case.
    static func list(_ v: [UInt8]) -> [String] {
        v.split(separator: 44).map { item in
            let blank = { (c: UInt8) in c == Ascii.space || c == Ascii.tab }
            return Self.text(item.drop(while: blank).reversed().drop(while: blank).reversed()).lowercased()
        }.filter { !$0.isEmpty }
    }

    static func expectsContinue(_ values: [[UInt8]]) -> Bool { values.flatMap(list).contains("100-continue") }

    /// tchar (RFC 9110 5.6.2).
    static func isToken(_ c: UInt8) -> Bool {
        Ascii.isDigit(c) || (65...90).contains(c) || (97...122).contains(c) || Array("!#$%&'*+-.^_`|~".utf8).contains(c)
    }

    static func text<S: Sequence>(_ b: S) -> String where S.Element == UInt8 { String(decoding: Array(b), as: UTF8.self) }

    static let reasons = [200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                          404: "Not Found", 408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
                          429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
                          501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"]

    /// The bytes of a response: status line, the answer's headers, its
    /// length, and "Connection: close" when this is the last one; the body
    /// unless the request was HEAD (whose answer is GET's without it).
    static func response(_ a: WebAnswer, close: Bool, head: Bool = false) -> [UInt8] {
        var text = "HTTP/1.1 \(a.status.code) \(reasons[a.status.code] ?? "Status")\r\n"
        for (n, v) in a.headers where n.lowercased() != "content-length" && n.lowercased() != "connection" {
            text += "\(n): \(v)\r\n"
        }
        text += "Content-Length: \(a.body.count)\r\n"
        if close { text += "Connection: close\r\n" }
        return Array((text + "\r\n").utf8) + (head ? [] : a.body)
    }
}
