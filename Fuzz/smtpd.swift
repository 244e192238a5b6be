// modules: QmailCore QmailQueue QmailNet QmailSMTP TestSupport
// Fuzz target: a whole qmail-smtpd session (command lines, AUTH LOGIN/PLAIN/
// CRAM-MD5 with base64, MAIL/RCPT address parsing, DATA) driven through the
// real SMTPServer state machine with an in-memory connection and queue.
//
// Input: byte 0 chooses the configuration (bit 0 AUTH offered, 1 AUTH
// required, 2 RELAYCLIENT set, 3 databytes 2000, 4 CRAM-MD5 only, 5 CRAM and
// LOGIN/PLAIN, 6 the queue refuses every message); byte 1 how the client's
// bytes are cut into reads (0: as much as fits, n: n bytes at a time); the
// rest is everything the client sends.
//
// Checked: every reply line is "ddd text" or "ddd-text" ended by CRLF; one
// queue per "354", at most one message per DATA; every "250 ok ... qp"
// stands for exactly one queued message and vice versa; a queued message is
// exactly the client's bytes between DATA and the first CRLF.CRLF, undone
// (no smuggling); envelope addresses hold no NUL and are bounded; at most
// one successful AUTH; output is bounded by the input; without RELAYCLIENT
// or AUTH every queued recipient passes rcpthosts; AUTH required means no
// mail without it.
#if canImport(Glibc)
import Glibc
#endif

func find(_ hay: ArraySlice<UInt8>, _ needle: [UInt8]) -> Int? {
    if hay.count < needle.count { return nil }
    var i = hay.startIndex
    while i + needle.count <= hay.endIndex {
        if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        i += 1
    }
    return nil
}

/// RFC 5321's DATA, decoded independently of DataReceiver: CRLF lines up to
/// the first "." line, a leading dot removed, CRLF -> LF. Nil when the
/// segment is not exactly one such message (or holds a bare LF).
/// One qmail quirk kept on purpose (qmail-smtpd's blast() does the same):
/// a dot followed by a lone CR (".\rX") stays as it is.
func referenceDecode(_ seg: ArraySlice<UInt8>) -> [UInt8]? {
    var body: [UInt8] = []
    var i = seg.startIndex
    while i < seg.endIndex {
        guard let j = find(seg[i...], [13, 10]) else { return nil }
        let line = seg[i..<j]
        if line.elementsEqual([46]) { return j + 2 == seg.endIndex ? body : nil }
        if line.contains(10) { return nil }
        let keepDot = line.count >= 2 && line[line.startIndex + 1] == 13
        body += line.first == 46 && !keepDot ? line.dropFirst() : line
        body.append(10)
        i = j + 2
    }
    return nil
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSmtpd(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if size < 2 { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let flags = bytes[0]
    let chunk = bytes[1] == 0 ? 1 << 20 : Int(bytes[1])

    var c = SMTPConfig()
    c.greeting = Array("mx.example.com".utf8)
    c.localIPHost = Array("example.com".utf8)
    c.remoteIP = Array("192.0.2.7".utf8)
    c.remoteHost = Array("client.example.org".utf8)
    c.local = Array("mx.example.com".utf8)
    c.rcptHosts = RcptHosts(lines: [Array("example.com".utf8), Array(".example.net".utf8)], more: nil)
    c.badMailFrom = BadMailFrom(lines: [Array("bad@example.org".utf8), Array("@spam.example".utf8)])
    c.ipme = [IPAddress("127.0.0.1")!, IPAddress("::1")!]
    c.maxRecipients = 20
    if flags & 1 != 0 { c.authHostname = Array("mx.example.com".utf8); c.checkpassword = ["/nonexistent"] }
    c.authRequired = flags & 2 != 0
    if flags & 4 != 0 { c.relayClient = [] }
    if flags & 8 != 0 { c.databytes = 2000 }
    c.authCram = flags & 16 != 0 || flags & 32 != 0
    c.authPlainLogin = flags & 16 == 0
    c.queueProgram = "/nonexistent/qmail-queue"
    c.authFailDelay = 0  // the delay after a refused AUTH is a sleep, not logic

    let stream = MemoryStream(bytes, offset: 2, chunk: chunk)
    let channel = Channel(stream: stream, timeout: 1200)
    let server = SMTPServer(config: c, channel: channel)
    var sinks: [MemorySink] = []
    var auths = 0
    server.queueFactory = {
        check(sinks.allSatisfy { $0.closed }, "a queue opened while another is open")
        let s = MemorySink()
        s.refuse = flags & 64 != 0
        s.dataStart = stream.offset - channel.bufferedCount
        s.onClose = { stream.offset - channel.bufferedCount }
        sinks.append(s)
        return s
    }
    server.checkPassword = { argv, user, secret, stamp in
        check(argv == ["/nonexistent"], "checkpassword argv")
        check(!user.isEmpty && !user.contains(0), "AUTH user empty or with NUL")
        check(!secret.contains(0) && !stamp.contains(0), "AUTH secret with NUL")
        if user == Array("good".utf8) && (secret == Array("secret".utf8) || stamp == Array("ok".utf8)) {
            auths += 1
            return .ok
        }
        return user == Array("temp".utf8) ? .temporary : .rejected
    }
    _ = server.run()
    try? channel.flush()  // a session cut short during AUTH leaves replies unsent
    let output = stream.output

    // Replies: "ddd text\r\n" / "ddd-text\r\n", nothing else.
    var lines: [ArraySlice<UInt8>] = []
    var i = 0
    while i < output.count {
        guard let j = find(output[i...], [13, 10]) else { check(false, "reply without CRLF"); break }
        let l = output[i..<j]
        check(l.count >= 4 && l.prefix(3).allSatisfy { $0 >= 48 && $0 <= 57 } && (l[i + 3] == 32 || l[i + 3] == 45),
              "malformed reply line")
        check(!l.contains(10) && !l.contains(13) && !l.contains(0), "bare CR/LF/NUL in a reply")
        lines.append(l)
        i = j + 2
    }
    check(lines.first?.starts(with: Array("220 ".utf8)) ?? false, "no greeting")
    let inputLines = bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) } + 1
    check(output.count <= 1024 + 512 * inputLines, "output out of proportion to input")

    // Queue accounting.
    let go = lines.filter { $0.starts(with: Array("354 ".utf8)) }.count
    check(sinks.count == go, "queues opened (\(sinks.count)) != 354 replies (\(go))")
    let okLines = lines.filter { l in
        l.starts(with: Array("250 ok ".utf8)) && l.count > 7 && Ascii.isDigit(l[l.startIndex + 7]) && find(l, Array(" qp ".utf8)) != nil
    }.count
    let queued = sinks.filter { $0.queued }
    check(okLines == queued.count, "250 ok replies (\(okLines)) != queued messages (\(queued.count))")
    check(auths <= 1, "more than one successful AUTH")
    check(lines.filter { $0.starts(with: Array("235 ".utf8)) }.count == auths, "235 without a good login")

    if c.authRequired { check(queued.isEmpty || auths > 0, "mail taken without the required AUTH") }
    for s in queued {
        guard let sender = s.sender else { check(false, "queued without sender"); continue }
        if c.relayClient == nil && auths == 0 {
            // No relaying: every recipient is ours, after the relay-trick checks.
            for r in s.recipients { check((try? c.rcptHosts.acceptsWithoutRelay(r)) == true, "relayed without RELAYCLIENT or AUTH") }
        }
        check(!s.recipients.isEmpty && s.recipients.count <= 20, "recipient count")
        for a in [sender] + s.recipients {
            check(!a.contains(0), "NUL in an envelope address")
            check(a.count <= AddressParse.maxLength + 16, "envelope address too long")
        }
        // The message is the client's DATA, undone by an independent decoder.
        check(s.dataStart <= s.dataEnd && s.dataEnd <= bytes.count, "data bounds")
        let body = Array(s.puts.dropFirst().joined())
        check(s.puts.first?.starts(with: Array("Received: from ".utf8)) ?? false, "no Received line")
        guard let ref = referenceDecode(bytes[s.dataStart..<s.dataEnd]) else {
            check(false, "queued message is not one DATA segment ended by the first CRLF.CRLF"); continue
        }
        check(ref == body, "queued message differs from the client's DATA")
        if c.databytes > 0 { check(body.count <= c.databytes, "message over databytes queued") }
    }
    return 0
}
