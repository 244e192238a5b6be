// modules: QmailCore
// Fuzz target: qmail-smtpd-auth's privileged side reading questions from a
// qmail-smtpd that its client may have taken over (AuthSeparation.serve).
//
// Checked against an independent decoding of the input (netstrings of
// "user\0secret\0stamp\0"): the checkpassword stand-in is asked exactly the
// questions decoded, in order, up to the first malformed one, the first
// good login, the third refusal or the tenth question; each gets exactly
// one answer byte, the right one; nothing reaches the checker with a NUL
// inside a field or longer than the request limit.
#if canImport(Glibc)
import Glibc
#endif

/// The expected questions: stops at the first thing that is not a well-formed question.
func decodeQuestions(_ b: [UInt8]) -> [([UInt8], [UInt8], [UInt8])] {
    var out: [([UInt8], [UInt8], [UInt8])] = []
    var i = 0
    while i < b.count {
        var n = 0, digits = 0
        while i < b.count, b[i] >= 48, b[i] <= 57, digits < 5 { n = n * 10 + Int(b[i] - 48); digits += 1; i += 1 }
        guard digits > 0, i < b.count, b[i] == 58, n <= AuthSeparation.requestLimit, i + 1 + n < b.count,
              b[i + 1 + n] == 44 else { return out }
        let body = Array(b[(i + 1)..<(i + 1 + n)])
        i += n + 2
        guard body.last == 0 else { return out }
        var fields: [[UInt8]] = [[]]
        for c in body.dropLast() { if c == 0 { fields.append([]) } else { fields[fields.count - 1].append(c) } }
        guard fields.count == 3 else { return out }
        out.append((fields[0], fields[1], fields[2]))
    }
    return out
}

func verdictFor(_ user: [UInt8]) -> CheckResult {
    if user == Array("good".utf8) { return .ok }
    if user == Array("down".utf8) { return .temporary }
    if user == Array("many".utf8) { return .limited }
    return .rejected
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAuthsep(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var pair: [Int32] = [-1, -1]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
    defer { close(pair[0]); close(pair[1]) }
    var bufSize: Int32 = 1 << 20
    setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &bufSize, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &bufSize, socklen_t(MemoryLayout<Int32>.size))
    var written = 0
    while written < bytes.count {
        let n = bytes.withUnsafeBytes { write(pair[0], $0.baseAddress! + written, $0.count - written) }
        if n <= 0 { return 0 } // larger than the socket buffer: not this target's question
        written += n
    }
    shutdown(pair[0], Int32(SHUT_WR))

    var asked: [([UInt8], [UInt8], [UInt8])] = []
    AuthSeparation.serve(fd: pair[1], maxFailures: 3, delay: 0) { u, s, t in
        check(u.count + s.count + t.count + 3 <= AuthSeparation.requestLimit, "an oversized question was asked")
        check(!u.contains(0) && !s.contains(0) && !t.contains(0), "NUL inside a field")
        asked.append((u, s, t))
        return verdictFor(u)
    }
    shutdown(pair[1], Int32(SHUT_WR))
    var answers: [UInt8] = []
    var b = [UInt8](repeating: 0, count: 64)
    while true {
        let n = read(pair[0], &b, b.count)
        if n <= 0 { break }
        answers += b[0..<n]
    }

    // What an independent reading says should have happened.
    var expected: [([UInt8], [UInt8], [UInt8])] = []
    var refusals = 0
    for q in decodeQuestions(bytes) {
        if expected.count == AuthSeparation.maxRequests { break }
        expected.append(q)
        let v = verdictFor(q.0)
        if v == .ok { break }
        if v == .rejected { refusals += 1; if refusals == 3 { break } }
    }
    check(asked.count == expected.count, "asked \(asked.count) questions, expected \(expected.count)")
    for (a, e) in zip(asked, expected) { check(a.0 == e.0 && a.1 == e.1 && a.2 == e.2, "a question changed on the way") }
    let wantAnswers = asked.map { u -> UInt8 in
        switch verdictFor(u.0) {
        case .ok: return 48
        case .rejected: return 49
        case .temporary: return 50
        case .limited: return 51
        }
    }
    check(answers == wantAnswers, "answers \(answers) instead of \(wantAnswers)")
    return 0
}
