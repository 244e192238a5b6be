// modules: QmailCore QmailPOP3
// Fuzz target: qmail-popup's AUTHORIZATION state: CommandReader's line
// reading (exact mode, as on a pipe) and PopupSession's USER/PASS/APOP/
// AUTH PLAIN (base64)/STLS/CAPA handling, driven as PopupServer drives them.
//
// Input: byte 0 chooses the configuration (bit 0 STLS offered, bit 1
// plaintext logins need TLS, bit 2 the connection is already TLS, bit 3
// the peer is a cluster host whose XCLIENT is believed); the rest
// is what the client sends. STLS, when accepted, counts as a successful
// handshake.
//
// Checked: lines are the input cut at LF (CR dropped, longer than 2048
// reported as too long); every reply is "+OK", "-ERR" or "+ " and ends in
// CRLF; a login carries a non-empty user and no NUL in user or password
// (fd 3 is NUL-separated); no plaintext login before TLS when TLS is
// required; PASS after STLS never uses a USER given before it; XCLIENT is
// acted on only for a trusted peer, and once.
#if canImport(Glibc)
import Glibc
#endif

/// What CommandReader must return, computed independently.
func expectedLines(_ b: ArraySlice<UInt8>, limit: Int) -> [CommandReader.Line] {
    var out: [CommandReader.Line] = []
    var start = b.startIndex
    while start < b.endIndex {
        let nl = b[start...].firstIndex(of: 10)
        let seg = b[start..<(nl ?? b.endIndex)]
        if seg.count > limit { out.append(.tooLong) } else { out.append(.line(Array(seg.last == 13 ? seg.dropLast() : seg))) }
        guard let n = nl else { break }
        start = n + 1
    }
    out.append(.eof)
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPopup(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if size < 1 { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let flags = bytes[0]
    let input = bytes[1...]
    let config = PopupConfig(timestamp: Array("<4242.1700000000@pop.example.com>".utf8),
                             tlsAvailable: flags & 1 != 0, tlsActive: flags & 4 != 0,
                             plaintextNeedsTLS: flags & 2 != 0, xclientTrusted: flags & 8 != 0)
    let session = PopupSession(config: config)
    let reader = CommandReader(fd: scratchHolding(input), exact: true, timeout: 0)
    let expected = expectedLines(input, limit: 2048)
    var tlsActive = config.tlsActive
    var userSinceTLS = false
    var clientNamed = false
    var index = 0
    session: while true {
        let got = reader.next()
        check(index < expected.count && got == expected[index], "line \(index) differs from the input")
        index += 1
        let actions: [PopupAction]
        var verb: [UInt8] = []
        switch got {
        case .eof: break session
        case .tooLong: actions = session.tooLong()
        case .line(let l):
            verb = POP3Command(l).verb
            actions = session.handle(l)
        }
        for a in actions {
            switch a {
            case .reply(let r):
                check(r.starts(with: Array("+OK".utf8)) || r.starts(with: Array("-ERR ".utf8)) || r == Array("+ \r\n".utf8),
                      "reply is not +OK/-ERR/+")
                check(r.count >= 2 && r[r.count - 2] == 13 && r[r.count - 1] == 10, "reply without CRLF")
                if verb == Array("user".utf8) && r.starts(with: Array("+OK".utf8)) { userSinceTLS = true }
            case .quit:
                break session
            case .startTLS:
                check(config.tlsAvailable && !tlsActive, "STLS started when not offered")
                session.tlsStarted()
                tlsActive = true
                userSinceTLS = false
            case .xclient:
                // Only a trusted peer's, once: PopupServer takes it (here
                // every one is taken, as a well-formed one would be).
                check(config.xclientTrusted && !clientNamed, "XCLIENT from an untrusted peer, or twice")
                check(verb == Array("xclient".utf8), "XCLIENT action for another command")
                session.clientChanged()
                clientNamed = true
            case .login(let user, let password):
                check(!user.isEmpty && !user.contains(0) && !password.contains(0), "login fields break fd 3's format")
                if config.plaintextNeedsTLS && !tlsActive {
                    check(verb == Array("apop".utf8), "plaintext login before TLS")
                }
                if verb == Array("pass".utf8) { check(userSinceTLS, "PASS used a USER from before STLS") }
                break session
            }
        }
    }
    return 0
}
