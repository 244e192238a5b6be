// One interface, two engines: SpamAssassin's spamd (SPAMC/1.5, SYMBOLS)
// and rspamd (HTTP POST /checkv2, JSON). control/spamd names one:
// "spamd 127.0.0.1:783", "rspamd 127.0.0.1:11333" or a unix socket path.
import QmailCore

/// What an engine said about a message.
public struct SpamScore {
    public var score: Double
    /// The engine's own spam threshold (spamd's required score, rspamd's
    /// required_score).
    public var required: Double
    public var symbols: [String]
    /// rspamd's recommended action ("no action", "add header", "greylist",
    /// "soft reject", "reject"); nil for spamd.
    public var action: String?
}

/// The envelope and connection facts an engine may use.
public struct SpamContext {
    public var sender: [UInt8] = []
    public var recipients: [[UInt8]] = []
    public var remoteIP: String?
    public var authUser: String?
    public init() {}
}

public enum SpamEngine: CustomStringConvertible {
    case spamd(ScannerAddress)
    case rspamd(ScannerAddress)

    /// Parses control/spamd's line: an engine name, then an address.
    public init?(_ line: String) {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 2, let address = ScannerAddress(String(words[1])) else { return nil }
        switch words[0] {
        case "spamd": self = .spamd(address)
        case "rspamd": self = .rspamd(address)
        default: return nil
        }
    }

    public var name: String {
        switch self { case .spamd: return "spamd"; case .rspamd: return "rspamd" }
    }

    public var description: String {
        switch self {
        case .spamd(let a): return "spamd \(a)"
        case .rspamd(let a): return "rspamd \(a)"
        }
    }

    /// Asks the engine; throws ScanError when it gives no verdict.
    public func check(_ message: [UInt8], context: SpamContext, deadline: Int) throws -> SpamScore {
        switch self {
        case .spamd(let a): return try Spamd.check(a, message, deadline: deadline)
        case .rspamd(let a): return try Rspamd.check(a, message, context: context, deadline: deadline)
        }
    }
}

/// The header block and the body of an answer, split at the first empty
/// line (CRLF or LF); nil while the empty line has not come.
func splitHead(_ raw: [UInt8]) -> (head: [String], body: ArraySlice<UInt8>)? {
    var i = 0
    var lineStart = 0
    var lines: [String] = []
    while i < raw.count {
        if raw[i] == 10 {
            var line = raw[lineStart..<i]
            if line.last == 13 { line = line.dropLast() }
            if line.isEmpty { return (lines, raw[(i + 1)...]) }
            lines.append(String(decoding: line, as: UTF8.self))
            lineStart = i + 1
        }
        i += 1
    }
    return nil
}

/// The value of `name:` among header lines, case-insensitively.
func headerValue(_ lines: [String], _ name: String) -> String? {
    let want = name.lowercased() + ":"
    for l in lines where l.lowercased().hasPrefix(want) {
        return String(l.dropFirst(want.count)).trimmingSpaces
    }
    return nil
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// A complete answer: the head has come, and the body is as long as its
/// Content-length says (or the peer will close).
func answerComplete(_ raw: [UInt8]) -> Bool {
    guard let (head, body) = splitHead(raw) else { return false }
    guard let len = headerValue(head, "Content-length").flatMap({ Int($0) }) else { return false }
    return body.count >= len
}

enum Spamd {
    static func check(_ address: ScannerAddress, _ message: [UInt8], deadline: Int) throws -> SpamScore {
        let s = try ScannerSocket(address, deadline: deadline)
        try s.send(Array("SYMBOLS SPAMC/1.5\r\nContent-length: \(message.count)\r\n\r\n".utf8) + message)
        s.shutdownWrite()
        return try parse(s.receive(limit: 65536, done: answerComplete))
    }

    /// "SPAMD/1.1 0 EX_OK", a "Spam: True ; 1000.0 / 5.0" header, and the
    /// rule names, comma-separated, as the body.
    static func parse(_ raw: [UInt8]) throws -> SpamScore {
        guard let (head, body) = splitHead(raw), let status = head.first else { throw ScanError("spamd: incomplete answer") }
        let words = status.split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("SPAMD/") else { throw ScanError("spamd: unexpected answer \(status.prefix(80))") }
        guard words[1] == "0" else { throw ScanError("spamd: \(status.prefix(120))") }
        guard let spam = headerValue(head, "Spam"), let semi = spam.firstIndex(of: ";") else {
            throw ScanError("spamd: no Spam header")
        }
        let numbers = spam[spam.index(after: semi)...].split(separator: "/").map { String($0).trimmingSpaces }
        guard numbers.count == 2, let score = Double(numbers[0]), let required = Double(numbers[1]),
              score.isFinite, required.isFinite else { throw ScanError("spamd: bad Spam header") }
        let symbols = String(decoding: body, as: UTF8.self).split(whereSeparator: { $0 == "," || $0.isNewline })
            .map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        return SpamScore(score: score, required: required, symbols: symbols, action: nil)
    }
}

enum Rspamd {
    static func check(_ address: ScannerAddress, _ message: [UInt8], context: SpamContext, deadline: Int) throws -> SpamScore {
        let s = try ScannerSocket(address, deadline: deadline)
        var head = "POST /checkv2 HTTP/1.0\r\nContent-Length: \(message.count)\r\n"
        func safe(_ v: String) -> String { String(v.filter { $0 != "\r" && $0 != "\n" }.prefix(1000)) }
        head += "From: \(safe(context.sender.string))\r\n"
        for r in context.recipients { head += "Rcpt: \(safe(r.string))\r\n" }
        if let ip = context.remoteIP, !ip.isEmpty { head += "IP: \(safe(ip))\r\n" }
        if let u = context.authUser, !u.isEmpty { head += "User: \(safe(u))\r\n" }
        try s.send(Array((head + "\r\n").utf8) + message)
        return try parse(s.receive(limit: 1 << 20, done: answerComplete))
    }

    static func parse(_ raw: [UInt8]) throws -> SpamScore {
        guard let (head, body) = splitHead(raw), let status = head.first else { throw ScanError("rspamd: incomplete answer") }
        let words = status.split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("HTTP/") else { throw ScanError("rspamd: unexpected answer \(status.prefix(80))") }
        guard words[1] == "200" else { throw ScanError("rspamd: \(status.prefix(120))") }
        guard let json = JSONValue.parse(Array(body)) else { throw ScanError("rspamd: answer is not JSON") }
        guard let action = json["action"]?.string, let score = json["score"]?.number, score.isFinite else {
            throw ScanError("rspamd: answer without action or score")
        }
        let required = json["required_score"]?.number ?? 15
        return SpamScore(score: score, required: required, symbols: json["symbols"]?.keys ?? [], action: action)
    }
}
