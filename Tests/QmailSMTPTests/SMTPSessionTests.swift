import XCTest
import QmailCore
import QmailNet
import QmailQueue
@testable import QmailSMTP
import TestSupport

/// Whole sessions in memory: the connection is a byte buffer, the queue a
/// MemorySink (both from TestSupport, as in Fuzz/smtpd.swift), AUTH a closure.
final class SMTPSessionTests: XCTestCase {
    var checked = 0

    func session(_ input: String, auth: Bool = false, cram: Bool = false) -> (code: Int32, replies: [String], sinks: [MemorySink]) {
        var c = SMTPConfig()
        c.rcptHosts = RcptHosts(lines: [Array("example.com".utf8)], more: nil)
        if auth { c.authHostname = Array("mx".utf8); c.checkpassword = ["/bin/false"] }
        if cram { c.authCram = true }
        let mem = MemoryStream(input)
        let server = SMTPServer(config: c, channel: Channel(stream: mem, timeout: 5))
        var sinks: [MemorySink] = []
        checked = 0
        server.queueFactory = { let s = MemorySink(queuePid: 7); sinks.append(s); return s }
        server.checkPassword = { _, user, secret, stamp in
            self.checked += 1
            return user.string == "u" && (secret.string == "p" || stamp.string == "ab") ? .ok : .rejected
        }
        let code = server.run()
        let replies = mem.output.string.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        return (code, replies, sinks)
    }

    func testPipelinedMessagesEachQueuedOnce() {
        let r = session("HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nhi\r\n.\r\n"
                        + "MAIL FROM:<>\r\nRCPT TO:<y@example.com>\r\nDATA\r\n..dot\r\n.\r\nQUIT\r\n")
        XCTAssertEqual(r.code, 0)
        XCTAssertEqual(r.sinks.count, 2)
        XCTAssertEqual(r.sinks[0].envelope, ["Fa@b", "Tx@example.com"])
        XCTAssertTrue(r.sinks[0].message.string.hasSuffix("\nhi\n"))
        XCTAssertEqual(r.sinks[1].envelope, ["F", "Ty@example.com"])
        XCTAssertTrue(r.sinks[1].message.string.hasSuffix("\n.dot\n"))
        XCTAssertEqual(r.replies.filter { $0.hasPrefix("250 ok 1") || $0.hasPrefix("250 ok 2") }.count, 2)
        XCTAssertEqual(r.replies.last?.hasPrefix("221 "), true)
    }

    /// A bare LF in DATA ends the session (qmail's 451) without queueing;
    /// it used to exit the process from inside the server.
    func testBareLFEndsSessionWithoutQueueing() {
        let r = session("HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nsmuggled\n.\nMAIL FROM:<e@f>\r\n.\r\nQUIT\r\n")
        XCTAssertEqual(r.code, 1)
        XCTAssertEqual(r.sinks.count, 1)
        XCTAssertTrue(r.sinks[0].failed)
        XCTAssertTrue(r.sinks[0].closed)
        XCTAssertEqual(r.replies.last, "451 See http://pobox.com/~djb/docs/smtplf.html.")
    }

    func testAuthPlainThroughChecker() {
        // "\0u\0p" and "\0u\0bad" in base64.
        let r = session("EHLO c\r\nAUTH PLAIN AHUAYmFk\r\nAUTH PLAIN AHUAcA==\r\nAUTH PLAIN AHUAcA==\r\nQUIT\r\n", auth: true)
        XCTAssertTrue(r.replies.contains("535 authentication failed (#5.7.8)"))
        XCTAssertTrue(r.replies.contains("235 ok, go ahead (#2.0.0)"))
        XCTAssertTrue(r.replies.contains("503 you're already authenticated (#5.5.0)"))
    }

    /// Found by Fuzz/smtpd.swift: a CRAM-MD5 response whose digest held a
    /// NUL went to checkpassword, where fd 3's NUL-separated fields cut it.
    func testCramResponseWithNULIsMalformed() {
        // "u ab\0cd", then "u ab".
        let r = session("EHLO c\r\nAUTH CRAM-MD5\r\ndSBhYgBjZA==\r\nAUTH CRAM-MD5\r\ndSBhYg==\r\nQUIT\r\n", auth: true, cram: true)
        XCTAssertTrue(r.replies.contains("501 malformed auth input (#5.5.4)"))
        XCTAssertTrue(r.replies.contains("235 ok, go ahead (#2.0.0)"))
        XCTAssertEqual(checked, 1)
    }

    // MARK: qmail-remote against a broken server (found by Fuzz/remote.swift)

    func remoteReport(_ replies: String) -> (report: String, sent: String) {
        var name = Array("/tmp/sq-remote-test-XXXXXX".utf8CString)
        let fd = mkstemp(&name)
        unlink(name)
        defer { close(fd) }
        let msg = Array("Subject: x\n\nbody\n".utf8)
        _ = msg.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        lseek(fd, 0, SEEK_SET)
        let remote = Remote(config: RemoteConfig(), resolver: DNSResolver(servers: []), ipme: [])
        let mem = MemoryStream(replies)
        remote.channel = Channel(stream: mem, timeout: 5)
        XCTAssertThrowsError(try remote.smtp(sender: Array("a@b".utf8), recipients: [Array("c@d".utf8)], input: fd,
                                             serverName: Array("mx".utf8), login: nil))
        return (remote.report.bytes.string, mem.output.string)
    }

    func testRemoteFinalReplyMustBe2xx() {
        let r = remoteReport("220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n354 go\r\n")
        XCTAssertTrue(r.report.hasSuffix("Z? failed after I sent the message.\nRemote host said: 354 go\n\0"), r.report)
        let ok = remoteReport("220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n")
        XCTAssertTrue(ok.report.hasPrefix("r\0K? accepted message."), ok.report)
    }

    func testRemoteSendsNoMessageWithoutGoAhead() {
        let r = remoteReport("220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n")
        XCTAssertTrue(r.report.hasSuffix("Z? failed on DATA command.\nRemote host said: 250 ok\n\0"), r.report)
        XCTAssertFalse(r.sent.contains("body"))
    }

    // MARK: QMTP / QMQP (found by Fuzz/qmtpd.swift)

    func ns(_ b: [UInt8]) -> [UInt8] { Netstring.encode(b) }
    func ns(_ s: String) -> [UInt8] { Netstring.encode(Array(s.utf8)) }

    func qmtp(_ input: [UInt8], relay: [UInt8]? = nil) -> (answers: [String], sinks: [MemorySink]) {
        let mem = MemoryStream(input)
        var sinks: [MemorySink] = []
        _ = QMTPServer.serve(Channel(stream: mem, timeout: 5), rcpthosts: RcptHosts(lines: [Array("example.com".utf8)], more: nil),
                             databytes: 0, relay: relay) { let s = MemorySink(queuePid: 7); sinks.append(s); return s }
        return ((Netstring.split(mem.output) ?? []).map { $0.string }, sinks)
    }

    /// A NUL in the QMTP sender used to reach qmail-queue's envelope, where
    /// it ends the sender and makes the rest a recipient: "a@b\0Tvictim@
    /// elsewhere" relayed to any host without RELAYCLIENT.
    func testQMTPSenderWithNULIsRefused() {
        let r = qmtp(ns("\nSubject: x\n\nhi\n") + ns(Array("a@b\0Tvictim@elsewhere.example".utf8)) + ns(ns("bob@example.com")))
        XCTAssertEqual(r.answers, ["Dunacceptable sender (#5.1.7)"])
        XCTAssertEqual(r.sinks.count, 1)
        XCTAssertTrue(r.sinks[0].failed)
        XCTAssertFalse(r.sinks[0].envelope.joined().contains("\0"))
    }

    func testQMTPRecipientWithNULIsRefusedOthersQueued() {
        let rcpts = ns(Array("x\0@example.com".utf8)) + ns("bob@example.com")
        let r = qmtp(ns("\nhi\n") + ns("a@b") + ns(rcpts))
        XCTAssertEqual(r.answers.count, 2)
        XCTAssertEqual(r.answers[0], "Dsorry, an address may not contain NUL (#5.1.3)")
        XCTAssertTrue(r.answers[1].hasPrefix("Kok "))
        XCTAssertEqual(r.sinks[0].envelope, ["Fa@b", "Tbob@example.com"])
        XCTAssertFalse(r.sinks[0].failed)
    }

    func testQMQPAddressWithNULIsRefused() {
        let body = ns("hi\n") + ns(Array("a@b\0Tc@d".utf8)) + ns("e@example.com")
        let mem = MemoryStream(ns(body))
        var sinks: [MemorySink] = []
        _ = QMQPServer.serve(Channel(stream: mem, timeout: 5)) { let s = MemorySink(queuePid: 7); sinks.append(s); return s }
        XCTAssertEqual((Netstring.split(mem.output) ?? []).map { $0.string }, ["Dsorry, an envelope address may not contain NUL (#5.1.3)"])
        XCTAssertTrue(sinks[0].failed)
        XCTAssertTrue(sinks[0].envelope.isEmpty)
    }
}
