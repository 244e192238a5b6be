// A QMTP client for one message (the protocol of qmail-qmtpd and
// serialmail's maildirqmtp): the message as one netstring of LF lines, the
// sender, the recipients; the server answers one netstring per recipient,
// "K" accepted, "Z" temporary, "D" permanent. Anything short of an answer
// (no connection, a timeout, a cut connection, a garbled reply) is a
// temporary failure: the message stays with the caller.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum QMTPClient {
    public static let defaultPort = 209

    /// The server's verdict for one recipient.
    public enum Verdict: Equatable {
        case accepted(String)
        case temporary(String)
        case permanent(String)
    }

    /// Sends `header` + the bytes `body` yields (`size` bytes in all, LF
    /// lines) to ip:port; one verdict per recipient, or one temporary
    /// verdict for all when the conversation failed.
    public static func send(to ip: IPAddress, port: Int, connectTimeout: Int, timeout: Int, size: Int,
                            body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void,
                            sender: [UInt8], recipients: [[UInt8]]) -> [Verdict] {
        let fd: Int32
        switch SocketAddress.connect(ip, port: port, timeout: connectTimeout) {
        case .success(let f): fd = f
        case .failure(let e):
            return recipients.map { _ in .temporary("unable to connect to \(ip):\(port): \(e)") }
        }
        defer { close(fd) }
        let ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: timeout)
        do {
            ch.put("\(size + 1):\n")
            try body { chunk in
                ch.put(Array(chunk))
                try ch.flush()
            }
            ch.put([44])
            ch.put(Netstring.encode(sender))
            ch.put(Netstring.encode(recipients.flatMap { Netstring.encode($0) }))
            try ch.flush()
            var out: [Verdict] = []
            for _ in recipients {
                guard let reply = try Netstring.read(ch, limit: 10000), let kind = reply.first else {
                    return recipients.map { _ in .temporary("\(ip):\(port) gave no QMTP answer") }
                }
                let text = String(decoding: reply.dropFirst(), as: UTF8.self)
                switch kind {
                case 75: out.append(.accepted(text))
                case 68: out.append(.permanent(text))
                default: out.append(.temporary(text))
                }
            }
            return out
        } catch {
            return recipients.map { _ in .temporary("QMTP conversation with \(ip):\(port) failed: \(error)") }
        }
    }
}
