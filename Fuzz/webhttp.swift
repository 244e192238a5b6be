// modules: QmailCore QmailNet QmailWeb TestSupport
// Fuzz target: qmail-webadmin's HTTP/1.1 reader (QmailWeb's HTTPReader),
// what a client sends after the TLS handshake, read request by request as
// the network process does, and the responses it writes.
//
// Input: byte 0 how the client's bytes are cut into reads (low 7 bits, 0:
// as much as fits) and, in bit 7, a body limit of 256 bytes instead of the
// pages' (so that bodies over it come often); the rest is what the client
// sends.
//
// Checked, for each request read (at most 16, until the end, a refusal or
// a thrown error): a refusal's status is one the reader may give; a
// request's method is a token, its path starts with "/" and its path and
// query are printable ASCII without blanks, its cookie holds no control
// character but tab, its body is within the limit and is what the client
// sent after the head (the last bytes, as many as each Content-Length
// says, or the chunks, each size in hex digits alone); the request written
// again in a canonical form (origin form, Host, one Cookie,
// Content-Length) and read by a fresh reader is the same request, and
// nothing after it; "100 Continue" is asked for at most once per request,
// right after its head's empty line and before any byte of its body, and
// only when its Expect asks for it; the bytes the reader took for a
// request, read alone, are that request and nothing more; the
// response written for it is one HTTP/1.1 response whose only
// Content-Length is its body's size, with "Connection: close" exactly when
// it is the last.
#if canImport(Glibc)
import Glibc
#endif

let refusals: Set<Int> = [400, 413, 414, 431, 501, 505]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebHTTP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if size < 1 { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let cut = Int(bytes[0] & 0x7f)
    let stream = MemoryStream(bytes, offset: 1, chunk: cut == 0 ? 1 << 20 : cut)
    let ch = Channel(stream: stream, timeout: 1200)
    let maxBody = bytes[0] & 0x80 != 0 ? 256 : WebApp.maxBody
    let reader = HTTPReader(ch: ch, maxBody: maxBody)
    for _ in 0..<16 {
        let start = stream.offset - ch.bufferedCount
        var continues = 0
        let read: HTTPRead
        do {
            read = try reader.read {
                continues += 1
                // what the client has sent so far ends with the head's empty line
                let used = bytes[1..<(stream.offset - ch.bufferedCount)]
                check(used.last == 10 && (used.dropLast().last == 10
                                          || (used.dropLast().last == 13 && used.dropLast(2).last == 10)),
                      "100 Continue asked for outside the end of a head")
                ch.put("HTTP/1.1 100 Continue\r\n\r\n")
                try ch.flush()
            }
        } catch {
            return 0
        }
        check(continues <= 1, "100 Continue asked for \(continues) times for one request")
        switch read {
        case .end:
            return 0
        case .refused(let status):
            check(refusals.contains(status), "refused with status \(status)")
            checkResponse(HTTPReader.response(WebAnswer(status: .init(code: status), body: Array("no".utf8)), close: true),
                          status: status, body: Array("no".utf8), close: true)
            return 0
        case .request(let r):
            checkRequest(r, maxBody: maxBody)
            let sent = bytes[start..<(stream.offset - ch.bufferedCount)]
            checkFraming(r, sent, continued: continues == 1)
            // its bytes alone, read by a fresh reader, are the same request and nothing more
            let alone = HTTPReader(ch: Channel(stream: MemoryStream(Array(sent)), timeout: 1200), maxBody: maxBody)
            check((try? alone.read { }) == .request(r) && (try? alone.read { }) == .end, "the request's bytes alone read otherwise")
            let answer = WebAnswer(status: .ok, headers: [("Location", r.path), ("content-length", "7"), ("Connection", "x")],
                                   body: r.body)
            checkResponse(HTTPReader.response(answer, close: !r.keepAlive), status: 200, body: r.body, close: !r.keepAlive)
        }
    }
    return 0
}

func checkRequest(_ r: HTTPRequest, maxBody: Int) {
    let method = Array(r.method.utf8), path = Array(r.path.utf8), query = Array(r.query.utf8)
    check(!method.isEmpty && method.allSatisfy(HTTPReader.isToken), "method not a token: \(method)")
    check(path.first == Ascii.slash, "path without its slash: \(path)")
    check(path.allSatisfy { $0 > 32 && $0 < 127 } && !path.contains(63), "path not printable ASCII: \(path)")
    check(query.allSatisfy { $0 > 32 && $0 < 127 }, "query not printable ASCII: \(query)")
    check(r.cookie.utf8.allSatisfy { $0 == Ascii.tab || ($0 >= 32 && $0 != 127) }, "control character in the cookie")
    check(r.body.count <= maxBody, "body of \(r.body.count) bytes over the limit \(maxBody)")

    // the same request in canonical form, read again
    var head = "\(r.method) \(r.path)\(r.query.isEmpty ? "" : "?" + r.query) HTTP/1.1\r\nHost: fuzz\r\n"
    if !r.cookie.isEmpty { head += "Cookie: \(r.cookie)\r\n" }
    head += "Content-Length: \(r.body.count)\r\n\r\n"
    // a head that only fits once its cookies are joined... or not at all
    if head.utf8.count > HTTPReader.maxHeadBytes - 64 { return }
    let again = MemoryStream(Array(head.utf8) + r.body)
    let reader = HTTPReader(ch: Channel(stream: again, timeout: 1200), maxBody: maxBody)
    var expected = r
    expected.keepAlive = true
    do {
        let first = try reader.read { }
        check(first == .request(expected), "read again as \(first), not \(expected)")
        check(try reader.read { } == .end, "more than one request read again")
    } catch {
        check(false, "reading the request again threw \(error)")
    }
}

/// The body is what the client sent after the head: its last bytes, or
/// the chunks of a chunked one, each chunk's size in hex digits alone.
/// "100 Continue" (`continued`) only for a request that expects it.
func checkFraming(_ r: HTTPRequest, _ sent: ArraySlice<UInt8>, continued: Bool) {
    var rest = sent
    func line() -> ArraySlice<UInt8>? {
        guard let lf = rest.firstIndex(of: Ascii.lf) else { return nil }
        defer { rest = rest[(lf + 1)...] }
        return rest[..<lf].last == Ascii.cr ? rest[..<(lf - 1)] : rest[..<lf]
    }
    var chunked = false, expects = false
    var lengths: [[String]] = []
    var seen = 0
    while let l = line() {
        if l.isEmpty { if seen > 0 { break } else { continue } }
        seen += 1
        guard seen > 1, let h = HTTPReader.header(Array(l)) else { continue }
        if h.name == "transfer-encoding" { chunked = true }
        if h.name == "content-length" { lengths.append(HTTPReader.list(h.value)) }
        if h.name == "expect" && HTTPReader.list(h.value).contains("100-continue") { expects = true }
    }
    check(!continued || expects, "100 Continue for a request that did not ask for it")
    if !chunked {
        for l in lengths { check(!l.isEmpty && l.allSatisfy { Int($0) == r.body.count }, "Content-Length \(l), a body of \(r.body.count)") }
        check(sent.suffix(r.body.count).elementsEqual(r.body), "the body is not the bytes after the head")
        return
    }
    var body: [UInt8] = []
    while let l = line() {
        let digits = l.prefix { $0 != 59 && $0 != Ascii.space && $0 != Ascii.tab }
        check(digits.allSatisfy { Ascii.isDigit($0) || (97...102).contains(Ascii.lower($0)) },
              "chunk size \(Array(digits)) taken, not hex digits")
        guard let size = Int(String(decoding: digits, as: UTF8.self), radix: 16), size > 0, size <= rest.count else { break }
        body += rest.prefix(size)
        rest = rest.dropFirst(size)
        _ = line()
    }
    check(body == r.body, "the chunked body is not its chunks")
}

/// `out` is one response: its status line, headers with one Content-Length
/// (the body's size) and "Connection: close" when `close`, then the body.
func checkResponse(_ out: [UInt8], status: Int, body: [UInt8], close: Bool) {
    let end: [UInt8] = [13, 10, 13, 10]
    guard let at = (0...(out.count - 4)).first(where: { out[$0..<($0 + 4)].elementsEqual(end) }) else {
        check(false, "response without the end of its head"); return
    }
    let lines = out[..<at].split(separator: 10, omittingEmptySubsequences: false).map { Array($0) }
    check(lines.allSatisfy { $0.last == 13 || $0 == lines.last }, "response line without CR")
    let text = lines.map { String(decoding: $0.last == 13 ? $0.dropLast() : $0[...], as: UTF8.self) }
    check(text[0].hasPrefix("HTTP/1.1 \(status) "), "status line \(text[0])")
    let fields = text.dropFirst().map { l -> (String, String) in
        let c = l.firstIndex(of: ":") ?? l.endIndex
        return (l[..<c].lowercased(), String(l[c...].dropFirst().drop { $0 == " " }))
    }
    let lengths = fields.filter { $0.0 == "content-length" }.map(\.1)
    check(lengths == [String(body.count)], "response lengths \(lengths) for a body of \(body.count)")
    let connection = fields.filter { $0.0 == "connection" }.map(\.1)
    check(connection == (close ? ["close"] : []), "response Connection \(connection), close \(close)")
    check(Array(out[(at + 4)...]) == body, "response body is not the answer's")
}
