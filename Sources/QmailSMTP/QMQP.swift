// QMQP (mini-qmail) and QMTP, qmail's netstring protocols.
//  - QMQPClient (qmail-qmqpc): a qmail-queue replacement that hands the
//    message to the first reachable server of control/qmqpservers.
//  - QMQPServer (qmail-qmqpd): one message per connection into qmail-queue.
//  - QMTPServer (qmail-qmtpd): many messages per connection, rcpthosts and
//    RELAYCLIENT as in qmail-smtpd, one status per recipient.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailQueue

public enum QMQPClient {
    /// Reads the message (fd 0) and envelope (fd 1), sends them; returns qmail-queue's exit code.
    public static func run(home: QmailHome) -> Int32 {
        let control = Control(home: home)
        guard let servers = try? control.list("qmqpservers") else { return 55 }
        guard let message = try? ByteReader(fd: 0, capacity: 65536).readAll(limit: 1 << 30) else { return 54 }
        guard let envelope = try? ByteReader(fd: 1, capacity: 8192).readAll(limit: 64 << 20) else { return 54 }
        // Envelope: Fsender\0 Trecip\0 ... \0
        guard envelope.first == 70 else { return 91 }
        var fields = envelope.split(byte: 0)
        guard fields.count >= 2, fields.last!.isEmpty else { return 91 }
        fields.removeLast()
        if fields.last?.isEmpty == true { fields.removeLast() }
        var body = Netstring.encode(message)
        body += Netstring.encode(Array(fields[0].dropFirst()))
        for f in fields.dropFirst() {
            guard f.first == 84 else { return 91 }
            body += Netstring.encode(Array(f.dropFirst()))
        }
        let packet = Netstring.encode(body)
        var lastError: Int32 = servers.isEmpty ? 55 : 73
        for s in servers {
            guard let ip = IPAddress(s.string) else { continue }
            let fd: Int32
            switch SocketAddress.connect(ip, port: 628, timeout: 10) {
            case .success(let f): fd = f
            case .failure(let e): lastError = e.errno == ETIMEDOUT ? 72 : 73; continue
            }
            defer { close(fd) }
            let ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: 60, capacity: 4096)
            ch.put(packet)
            do {
                try ch.flush()
                guard let reply = try Netstring.read(ch, limit: 100000), let k = reply.first else { lastError = 74; continue }
                switch k {
                case 75: return 0
                case 68: return 31
                default: return 71
                }
            } catch {
                lastError = 74
            }
        }
        return lastError
    }
}

/// The Received line and identity of a network peer, from tcpserver's variables.
struct PeerIdentity {
    var remoteIP = Array((Sys.getenv("TCPREMOTEIP") ?? "unknown").utf8)
    var remoteHost = Array((Sys.getenv("TCPREMOTEHOST") ?? "unknown").utf8)
    var remoteInfo = Sys.getenv("TCPREMOTEINFO").map { Array($0.utf8) }
    var local = Array((Sys.getenv("TCPLOCALHOST") ?? Sys.getenv("TCPLOCALIP") ?? "unknown").utf8)

    func received(_ proto: String) -> [UInt8] {
        Received.line(protocol: proto, local: local, remoteIP: remoteIP, remoteHost: remoteHost, remoteInfo: remoteInfo, helo: nil)
    }
}

public enum QMQPServer {
    public static func run(home: QmailHome) -> Int32 {
        let ch = Channel(stream: FdStream(inFd: 0, outFd: 1), timeout: 1200)
        let program = QueueClient.program(home: home, honourEnvironment: true)
        return serve(ch) { try QueueClient(program: program) }
    }

    /// One QMQP packet from `ch` into the queue `openQueue` gives.
    public static func serve(_ ch: Channel, openQueue: () throws -> QueueSink) -> Int32 {
        func answer(_ s: String) -> Int32 {
            ch.put(Netstring.encode(Array(s.utf8)))
            try? ch.flush()
            return 0
        }
        do {
            guard var total = try Netstring.readLength(ch), let mlen = try Netstring.readLength(ch, limit: total) else { return 1 }
            total -= "\(mlen):".utf8.count + mlen + 1
            guard total >= 0 else { return 1 }
            let qq: QueueSink
            do { qq = try openQueue() } catch {
                return answer(QMTPReply.queueUnavailable)
            }
            qq.put(PeerIdentity().received("QMQP"))
            guard try ch.read(exactly: mlen, into: { qq.put(Array($0)) }), try ch.byte() == 44 else {
                qq.fail(); _ = qq.close(); return 1
            }
            guard total <= 64 << 20 else { qq.fail(); _ = qq.close(); return answer(QMTPReply.envelopeTooLong) }
            var rest: [UInt8] = []
            guard try ch.read(exactly: total, into: { rest += $0 }), try ch.byte() == 44,
                  let env = Netstring.split(rest), env.count >= 2 else {
                qq.fail(); _ = qq.close(); return 1
            }
            // A NUL would end the address in qmail-queue's envelope and let
            // the rest pass as another recipient.
            guard !env.contains(where: { $0.contains(0) }) else {
                qq.fail(); _ = qq.close(); return answer(QMTPReply.envelopeNUL)
            }
            qq.from(env[0])
            for r in env.dropFirst() { qq.to(r) }
            if let f = qq.close() { return answer(QMTPReply.failure(f)) }
            return answer(QMTPReply.accepted(at: Sys.now(), qp: qq.queuePid))
        } catch {
            return 1
        }
    }
}

public enum QMTPServer {
    public static func run(home: QmailHome) -> Int32 {
        let control = Control(home: home)
        guard let rcpthosts = try? RcptHosts(control: control), let databytesCtl = try? control.number("databytes") else {
            return 1
        }
        var databytes = databytesCtl
        if let d = Sys.getenv("DATABYTES"), let v = Decimal.scanPrefix(Array(d.utf8)) { databytes = v }
        let relay = Sys.getenv("RELAYCLIENT").map { Array($0.utf8) }
        let timeout = (try? control.number("timeoutsmtpd")) ?? 1200
        let ch = Channel(stream: FdStream(inFd: 0, outFd: 1), timeout: max(1, timeout))
        let queueProgram = QueueClient.program(home: home, honourEnvironment: true)
        // One queue process for all the messages of a connection, as qmail-smtpd does.
        let session = QueueSession.wanted(program: queueProgram, home: home) ? QueueSession(program: queueProgram) : nil
        return serve(ch, rcpthosts: rcpthosts, databytes: databytes, relay: relay) {
            try QueueSession.open(session, program: queueProgram)
        }
    }

    /// QMTP messages from `ch` until the client stops, each into a queue `openQueue` gives.
    public static func serve(_ ch: Channel, rcpthosts: RcptHosts, databytes: Int, relay: [UInt8]?,
                             openQueue: () throws -> QueueSink) -> Int32 {
        do {
            while true {
                guard let len = try Netstring.readLength(ch) else { try ch.flush(); return 0 }
                guard len >= 1, let kind = try ch.byte() else { return 1 }
                let qq: QueueSink? = try? openQueue()
                qq?.put(PeerIdentity().received("QMTP"))
                var tooBig = false
                var written = 0
                // kind '\n': LF lines as stored; '\r': CRLF lines (converted).
                var pendingCR = false
                guard try ch.read(exactly: len - 1, into: { chunk in
                    written += chunk.count
                    if databytes > 0 && written > databytes { tooBig = true }
                    if tooBig { return }
                    if kind == 13 {
                        var out: [UInt8] = []
                        out.reserveCapacity(chunk.count)
                        for c in chunk {
                            if pendingCR && c != 10 { out.append(13) }
                            pendingCR = c == 13
                            if !pendingCR { out.append(c) }
                        }
                        qq?.put(out)
                    } else {
                        qq?.put(Array(chunk))
                    }
                }), try ch.byte() == 44 else { qq?.fail(); _ = qq?.close(); return 1 }
                guard let sender = try Netstring.read(ch, limit: 1 << 20),
                      let rlist = try Netstring.read(ch, limit: 64 << 20), let rcpts = Netstring.split(rlist) else {
                    qq?.fail(); _ = qq?.close(); return 1
                }
                var status = [String](repeating: "", count: rcpts.count)
                var accepted = 0
                // A NUL would end the address in qmail-queue's envelope and
                // let the rest pass as another recipient, past rcpthosts.
                let senderOK = !sender.contains(0)
                qq?.from(senderOK ? sender : [])
                for (i, r) in rcpts.enumerated() {
                    if r.contains(0) { status[i] = QMTPReply.addressNUL; continue }
                    if let relay { qq?.to(r + relay); accepted += 1; continue }
                    if (try? rcpthosts.acceptsWithoutRelay(r)) == true { qq?.to(r); accepted += 1 } else {
                        status[i] = QMTPReply.notInRcpthosts
                    }
                }
                var verdict: String
                if let qq {
                    if tooBig || kind != 10 && kind != 13 || accepted == 0 || !senderOK { qq.fail() }
                    let f = qq.close()
                    if tooBig { verdict = QMTPReply.tooBig }
                    else if kind != 10 && kind != 13 { verdict = QMTPReply.unknownEncoding }
                    else if !senderOK { verdict = QMTPReply.badSender }
                    else if let f { verdict = QMTPReply.failure(f) }
                    else { verdict = QMTPReply.accepted(at: Sys.now(), qp: qq.queuePid) }
                } else {
                    verdict = QMTPReply.queueUnavailable
                }
                for i in 0..<rcpts.count where status[i].isEmpty || tooBig { status[i] = verdict }
                for s in status { ch.put(Netstring.encode(Array(s.utf8))) }
                try ch.flush()
            }
        } catch {
            return 1
        }
    }
}
