// modules: QmailCore QmailQueue QmailNet QmailSMTP TestSupport
// Fuzz target: qmail-remote reading a remote SMTP server's replies (a
// hostile or broken MX): the greeting, EHLO/HELO, MAIL, RCPT, DATA and the
// final reply, multi-line replies, missing or bad codes. The input is
// everything the server sends; byte 0 picks the message (bit 0: a UTF-8
// recipient, so EHLO and SMTPUTF8 are needed) and the recipients (1-3).
//
// Checked: the report is NUL-terminated records: an r/h/s record per
// recipient answered, in order, and then exactly one K, Z or
// D record, which is last; K only with an accepted recipient and only when
// the server's last reply read was a 2xx; reports are bounded; the client
// sent each RCPT only after MAIL, and the message only after a 354-class
// reply to DATA.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) var messageFd: Int32 = -1
let message = Array("From: a@example.org\nSubject: hi\n\nbody\n.dot line\n".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRemote(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if size < 1 { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if messageFd < 0 { messageFd = scratchHolding(message) }
    lseek(messageFd, 0, SEEK_SET)
    let flags = bytes[0]
    var recipients = [Array("bob@example.com".utf8), Array("carol@example.com".utf8), Array("dave@example.com".utf8)]
    recipients = Array(recipients.prefix(1 + Int(flags >> 1) % 3))
    if flags & 1 != 0 { recipients[0] = Array("b\u{f6}b@example.com".utf8) }

    let remote = Remote(config: RemoteConfig(), resolver: DNSResolver(servers: []), ipme: [])
    let stream = MemoryStream(bytes, offset: 1)
    remote.channel = Channel(stream: stream, timeout: 1200, capacity: 16384)
    do {
        try remote.smtp(sender: Array("alice@example.org".utf8), recipients: recipients, input: messageFd,
                        serverName: Array("mx.example.com".utf8), login: nil)
        check(false, "smtp() returned without a verdict")
    } catch {}
    let report = remote.report.bytes
    check(report.last == 0, "report not NUL-terminated")
    check(report.count <= 12000 * (recipients.count + 1), "report too long")
    let recs = report.dropLast().split(separator: 0, omittingEmptySubsequences: false)
    check(recs.allSatisfy { !$0.isEmpty }, "empty report record")
    guard let last = recs.last?.first else { return 0 }
    check([75, 90, 68].contains(last), "last record is not K/Z/D")
    let perRcpt = recs.dropLast()
    check(perRcpt.allSatisfy { [114, 104, 115].contains($0.first!) }, "a K/Z/D record before the end")
    // A connection that dies during RCPT ends the report early (as in qmail).
    check(perRcpt.count <= recipients.count, "\(perRcpt.count) recipient records for \(recipients.count)")
    if last == 75 {
        check(perRcpt.count == recipients.count && perRcpt.contains { $0.first == 114 }, "K without every recipient answered and one accepted")
        let k = Array(recs.last!)
        let said = Array("Remote host said: ".utf8)
        let at = k.indices.first { k[$0...].starts(with: said) }
        check(at != nil && k.count > at! + said.count && k[at! + said.count] == 50, "K after a reply that is not 2xx")
        // The message went out, stuffed and terminated, after DATA.
        let sent = stream.output
        let dataAt = sent.indices.first { sent[$0...].starts(with: Array("DATA\r\n".utf8)) }
        check(dataAt != nil, "K without DATA")
        check(sent.count >= 3 && sent[(sent.count - 3)...].elementsEqual(Array(".\r\n".utf8)) || sent.suffix(6).elementsEqual(Array("QUIT\r\n".utf8)),
              "message not terminated")
        check(sent.indices.contains { sent[$0...].starts(with: Array("\r\n..dot line\r\n".utf8)) }, "leading dot not doubled")
    }
    return 0
}
