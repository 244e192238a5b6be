// modules: QmailCore QmailQueue QmailNet QmailSMTP TestSupport
// Fuzz target: qmail-qmtpd (QMTP, many messages per connection) and
// qmail-qmqpd (QMQP, one message) reading netstrings from a client, with
// an in-memory connection and queue.
//
// Input: byte 0 chooses the server and its configuration (bit 0 QMQP
// instead of QMTP, bit 1 RELAYCLIENT set, bit 2 databytes 1000); byte 1 how
// the client's bytes are cut into reads (0: as much as fits); the rest is
// what the client sends.
//
// Checked: the server's output is a sequence of netstrings each starting
// with K, Z or D; QMTP answers once per recipient of each message; a
// message is queued only when a K is sent for it; envelope addresses hold
// no NUL (it would end the address in qmail-queue's envelope and let the
// rest pass as another recipient); without RELAYCLIENT every queued QMTP
// recipient is in rcpthosts.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQmtpd(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if size < 2 { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let flags = bytes[0]
    let stream = MemoryStream(bytes, offset: 2, chunk: bytes[1] == 0 ? 1 << 20 : Int(bytes[1]))
    let ch = Channel(stream: stream, timeout: 1200)
    var sinks: [MemorySink] = []
    let open: () throws -> QueueSink = {
        check(sinks.allSatisfy { $0.closed }, "a queue opened while another is open")
        let s = MemorySink()
        sinks.append(s)
        return s
    }
    let qmqp = flags & 1 != 0
    let relay: [UInt8]? = flags & 2 != 0 ? [] : nil
    let hosts = RcptHosts(lines: [Array("example.com".utf8)], more: nil)
    if qmqp {
        _ = QMQPServer.serve(ch, openQueue: open)
    } else {
        _ = QMTPServer.serve(ch, rcpthosts: hosts, databytes: flags & 4 != 0 ? 1000 : 0, relay: relay, openQueue: open)
    }
    try? ch.flush()
    guard let answers = Netstring.split(stream.output) else { check(false, "output is not netstrings"); return 0 }
    for a in answers { check([75, 90, 68].contains(a.first ?? 0), "answer not K/Z/D") }
    let ks = answers.filter { $0.first == 75 }.count
    let queued = sinks.filter { $0.queued }
    if qmqp {
        check(sinks.count <= 1 && answers.count <= 1, "QMQP took more than one message")
        check(ks == queued.count, "K answers (\(ks)) != queued messages (\(queued.count))")
    } else {
        // One answer per recipient; each queued message's recipients all get K.
        check(ks >= queued.reduce(0) { $0 + $1.recipients.count }, "queued recipients without K")
    }
    for s in queued {
        guard let sender = s.sender else { check(false, "queued without a sender"); continue }
        check(!s.recipients.isEmpty, "queued without recipients")
        for a in [sender] + s.recipients { check(!a.contains(0), "NUL in an envelope address") }
        if !qmqp && relay == nil {
            for r in s.recipients { check((try? hosts.acceptsWithoutRelay(r)) == true, "relayed without RELAYCLIENT") }
        }
        if !qmqp && flags & 4 != 0 { check(s.size <= 1000 + 400, "message over databytes queued") }
    }
    return 0
}
