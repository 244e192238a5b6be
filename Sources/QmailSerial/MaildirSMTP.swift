// maildirsmtp (serialmail): the dial-up relay case. qmail-local has put
// each message for the customer into a Maildir with Return-Path and
// Delivered-To at its top; when the customer connects, maildirsmtp sends
// them to the customer's SMTP server. The recipient is Delivered-To with
// `prefix` removed (messages whose Delivered-To lacks it are left alone).
// Accepted messages are removed; permanently rejected ones are bounced to
// their sender, then removed; temporarily rejected ones stay, unless they
// are more than two weeks old (then they bounce). A server that cannot be
// reached removes nothing.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public struct SerialMessage {
    public let sender: [UInt8]
    public let recipient: [UInt8]
    /// The message without the Return-Path and Delivered-To lines.
    public let body: [UInt8]
}

public enum SerialFormat {
    /// Reads the envelope from the top of a message, as serialsmtp does.
    /// nil when the message lacks a Delivered-To line or the prefix.
    public static func parse(_ data: [UInt8], prefix: [UInt8]) -> SerialMessage? {
        var sender: [UInt8]? = nil
        var recip: [UInt8]? = nil
        var pos = 0
        var kept: [UInt8] = []
        // only the first lines, before any other header field, carry the envelope
        while pos < data.count, sender == nil || recip == nil {
            guard let nl = data[pos...].firstIndex(of: Ascii.lf) else { break }
            let line = Array(data[pos..<nl])
            let lower = line.lowercasedASCII()
            if sender == nil, lower.starts(with: Array("return-path:".utf8)) {
                var v = Array(line.dropFirst(12).drop { $0 == Ascii.space || $0 == Ascii.tab })
                if v.last == Ascii.cr { v.removeLast() }
                if v.first == 60 { v.removeFirst() }
                if v.last == 62 { v.removeLast() }
                sender = v
            } else if recip == nil, lower.starts(with: Array("delivered-to:".utf8)) {
                var v = Array(line.dropFirst(13).drop { $0 == Ascii.space || $0 == Ascii.tab })
                if v.last == Ascii.cr { v.removeLast() }
                recip = v
            } else {
                break
            }
            pos = nl + 1
        }
        kept = Array(data[pos...])
        guard let r = recip, r.starts(with: prefix) else { return nil }
        return SerialMessage(sender: sender ?? [], recipient: Array(r.dropFirst(prefix.count)), body: kept)
    }

    /// The DATA payload (SMTPDataEncoder's wire form); a last line
    /// without LF is ended with CRLF.
    public static func dataPayload(_ body: [UInt8]) -> [UInt8] { SMTPDataEncoder.data(body) }
}

struct SMTPError: Error { let message: String }

final class SMTPConnection {
    let fd: Int32
    let reader: ByteReader

    init(host: String, port: String, timeout: Int) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, port, &hints, &res)
        guard rc == 0, let first = res else {
            throw SMTPError(message: "cannot find \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(res) }
        var ai: UnsafeMutablePointer<addrinfo>? = first
        var lastErr: Int32 = 0
        while let a = ai {
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if s >= 0 {
                Sys.setSocketTimeouts(s, receive: timeout, send: timeout)
                if connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                    fd = s
                    reader = ByteReader(fd: s)
                    return
                }
                lastErr = errno
                close(s)
            }
            ai = a.pointee.ai_next
        }
        throw SMTPError(message: "cannot connect to \(host) port \(port): \(Sys.strerror(lastErr))")
    }

    deinit { close(fd) }

    /// One SMTP reply: its code and text (continuation lines joined by '/').
    func reply() throws -> (code: Int, text: String) {
        var text = ""
        while true {
            guard let (l, _) = try reader.line(limit: 4096) else { throw SMTPError(message: "connection closed by server") }
            var line = l
            while line.last == Ascii.lf || line.last == Ascii.cr { line.removeLast() }
            guard line.count >= 3, let code = Int(String(decoding: line.prefix(3), as: UTF8.self)) else {
                throw SMTPError(message: "bad SMTP reply: \(SendLog.safe(line))")
            }
            text += (text.isEmpty ? "" : "/") + SendLog.safe(line)
            if line.count == 3 || line[3] != Ascii.minus { return (code, text) }
        }
    }

    func send(_ bytes: [UInt8]) throws { try Sys.writeAll(fd, bytes) }

    func command(_ s: [UInt8]) throws -> (code: Int, text: String) {
        try send(s + [Ascii.cr, Ascii.lf])
        return try reply()
    }
}

public enum MaildirSMTP {
    public static let twoWeeks = 14 * 86400

    public enum Outcome: Equatable { case sent, bounced, deferred, skipped }

    public static func main(_ args: [String]) -> Int32 {
        guard args.count == 5 else {
            Sys.warn("usage: maildirsmtp dir prefix host helohost"); return QmailExit.permanent
        }
        let dir = args[1], prefix = Array(args[2].utf8), host = args[3], helo = args[4]
        let port = Sys.getenv("PORT").flatMap { $0.isEmpty ? nil : $0 } ?? "25"
        var files: [(String, Int)] = []
        for sub in ["new", "cur"] {
            guard let names = try? Sys.listDirectory("\(dir)/\(sub)") else {
                Sys.warn("maildirsmtp: fatal: unable to scan \(dir)/\(sub): \(Sys.strerror(errno))"); return QmailExit.temporary
            }
            for n in names where !n.hasPrefix(".") {
                let p = "\(dir)/\(sub)/\(n)"
                if let st = try? Sys.stat(p) { files.append((p, Int(st.st_mtim.tv_sec))) }
            }
        }
        files.sort { $0.0 < $1.0 }
        if files.isEmpty { return 0 }
        let conn: SMTPConnection
        do {
            conn = try SMTPConnection(host: host, port: port, timeout: 1200)
            let g = try conn.reply()
            guard g.code / 100 == 2 else { throw SMTPError(message: "greeting: \(g.text)") }
            let h = try conn.command(Array("HELO \(helo)".utf8))
            guard h.code / 100 == 2 else { throw SMTPError(message: "HELO: \(h.text)") }
        } catch let e as SMTPError {
            Sys.warn("maildirsmtp: \(e.message)"); return QmailExit.temporary
        } catch {
            Sys.warn("maildirsmtp: \(error)"); return QmailExit.temporary
        }
        let home = QmailHome.current()
        var counts: [Outcome: Int] = [:]
        for (path, mtime) in files {
            do {
                let o = try deliver(conn, path: path, mtime: mtime, prefix: prefix, home: home)
                counts[o, default: 0] += 1
            } catch let e as SMTPError {
                Sys.warn("maildirsmtp: \(e.message); the rest stays for the next run"); return QmailExit.temporary
            } catch {
                Sys.warn("maildirsmtp: \(path): \(error)"); return QmailExit.temporary
            }
        }
        _ = try? conn.command(Array("QUIT".utf8))
        Sys.warn("maildirsmtp: \(counts[.sent] ?? 0) sent, \(counts[.bounced] ?? 0) bounced, \(counts[.deferred] ?? 0) deferred, \(counts[.skipped] ?? 0) skipped")
        return 0
    }

    static func say(_ s: String) { _ = try? Sys.writeAll(1, s + "\n") }

    static func deliver(_ c: SMTPConnection, path: String, mtime: Int, prefix: [UInt8], home: QmailHome) throws -> Outcome {
        guard let data = try FileIO.read(path, limit: 1 << 30) else { return .skipped }
        let name = FileIO.baseName(path)
        guard let m = SerialFormat.parse(data, prefix: prefix) else {
            say("\(name) skipped: no Delivered-To with the prefix"); return .skipped
        }
        var reply = try c.command(Array("MAIL FROM:<".utf8) + m.sender + Array(">".utf8))
        if reply.code / 100 == 2 {
            reply = try c.command(Array("RCPT TO:<".utf8) + m.recipient + Array(">".utf8))
            if reply.code / 100 == 2 {
                reply = try c.command(Array("DATA".utf8))
                if reply.code == 354 {
                    try c.send(SerialFormat.dataPayload(m.body))
                    reply = try c.reply()
                }
            }
        }
        if reply.code / 100 == 2 {
            try Sys.unlink(path)
            say("\(name) sent to \(m.recipient.string): \(reply.text)")
            return .sent
        }
        if reply.code != 354 { _ = try c.command(Array("RSET".utf8)) }
        let permanent = reply.code / 100 == 5 || Sys.now() - mtime > twoWeeks
        guard permanent else {
            say("\(name) deferred: \(reply.text)"); return .deferred
        }
        if let f = bounce(m, reason: reply.text, home: home) {
            // could not queue the bounce: keep the message (never lose mail)
            say("\(name) rejected (\(reply.text)) but the bounce failed: \(f.description)"); return .deferred
        }
        try Sys.unlink(path)
        say("\(name) bounced: \(reply.text)")
        return .bounced
    }

    /// Queues a bounce to the envelope sender (none for bounces themselves).
    public static func bounce(_ m: SerialMessage, reason: String, home: QmailHome) -> MailFailure? {
        if m.sender.isEmpty || m.sender == Array("#@[]".utf8) { return nil }
        do {
            let q = try QueueClient(program: QueueClient.program(home: home, honourEnvironment: true))
            q.put("From: MAILER-DAEMON\nTo: \(m.sender.string)\nSubject: failure notice\n\n")
            q.put("Hi. This is maildirsmtp. I tried to pass on your message, but the\nSMTP server refused it permanently.\n\n")
            q.put("<\(m.recipient.string)>:\n\(reason)\n\n--- Below this line is a copy of the message.\n\n")
            q.put(m.body)
            q.from([])
            q.to(m.sender)
            return q.close()
        } catch {
            return MailFailure.temporary("cannot run qmail-queue: \(error)")
        }
    }
}
