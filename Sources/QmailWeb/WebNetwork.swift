// The network half of qmail-webadmin: TLS (QmailTLS, OpenSSL) and HTTP
// (WebHTTP.swift) in a process that gave up root before it read a byte
// from the network. It knows no session, password or file: each request
// goes as one WebRequest frame to the root helper (WebHelper.swift), one
// at a time, and its WebAnswer comes back as the response. A thread per
// connection, up to a limit; every read has a deadline. It ends when the
// helper does.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailTLS

/// Our end of the socketpair to the helper: one exchange at a time (the
/// lock queues the others). Once the helper is gone it stays gone.
final class HelperLink: @unchecked Sendable {
    private let ch: Channel
    private var lock = pthread_mutex_t()
    private(set) var broken = false
    /// A change may take a while (a domain's deletion, a directory login).
    static let answerSeconds = 600

    init(fd: Int32) {
        ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: HelperLink.answerSeconds)
        pthread_mutex_init(&lock, nil)
    }

    func exchange(_ r: WebRequest) -> WebAnswer? {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if broken { return nil }
        ch.put(r.encode())
        do { try ch.flush() } catch { broken = true; return nil }
        guard case .content(let c) = readFrame(ch, limit: WebAnswer.maxFrame), let a = WebAnswer.decode(c) else {
            broken = true
            return nil
        }
        return a
    }
}

public struct WebNetwork: @unchecked Sendable {
    let helper: Int32
    /// The root helper, our parent: when it is gone, so are we.
    let parent: pid_t
    let settings: WebAdmin.Settings
    /// Bound and listening, made before the split.
    let listener: Int32
    let tls: TLSContext

    /// Connections served at once; more wait in the listen queue.
    static let maxConnections = 256
    /// For the TLS handshake.
    static let handshakeSeconds = 10
    /// For each request from its first byte (head and body), and for each write.
    static let requestSeconds = 30
    /// For the next request on a kept-alive connection.
    static let idleSeconds = 60
    /// What is read and dropped after a refusal, before the connection closes.
    static let drainSeconds = 5
    static let drainBytes = 1 << 20
    /// Requests on one connection.
    static let maxRequests = 1000

    func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let link = HelperLink(fd: helper)
        let parent = self.parent
        guard Sys.detachThread({
            while getppid() == parent { sleep(1) }
            kill(getpid(), SIGTERM)
        }) else {
            Sys.warn("qmail-webadmin: fatal: unable to start a thread")
            return QmailExit.temporary
        }
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &st) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        let port = SocketAddress(storage: st)?.port ?? 0
        let address = settings.address
        Sys.warn("qmail-webadmin: listening on https://\(address.contains(":") ? "[\(address)]" : address):\(port)/ as uid \(getuid())")
        let slots = Slots(WebNetwork.maxConnections)
        while !link.broken {
            slots.take()
            var peer = sockaddr_storage()
            var plen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &plen) }
            }
            if fd < 0 {
                let e = errno
                slots.give()
                if e == EINTR || e == ECONNABORTED || e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    if e != EINTR && e != ECONNABORTED { sleep(1) }
                    continue
                }
                Sys.warn("qmail-webadmin: fatal: unable to accept: \(Sys.strerror(e))")
                return QmailExit.temporary
            }
            // an IPv6 address's zone (fe80::1%eth0) says nothing about the peer
            let ip = SocketAddress(storage: peer).map { String($0.ip.unmapped.description.prefix { $0 != "%" }) } ?? ""
            let tls = self.tls
            let started = Sys.detachThread {
                WebNetwork.serve(fd, ip: ip, tls: tls, link: link)
                close(fd)
                slots.give()
            }
            if !started {
                close(fd)
                slots.give()
                sleep(1)
            }
        }
        Sys.warn("qmail-webadmin: fatal: the helper is gone")
        return QmailExit.temporary
    }

    /// One connection: the handshake, then requests until either side ends it.
    static func serve(_ fd: Int32, ip: String, tls context: TLSContext, link: HelperLink) {
        Sys.setSocketTimeouts(fd, receive: handshakeSeconds, send: requestSeconds)
        guard let session = try? TLSConnection(context: context, readFD: fd, writeFD: fd) else { return }
        let refused = requests(TLSStream(session), ip: ip, link: link)
        session.close()
        if refused { linger(fd) }
    }

    /// The requests of one connection; true when it ended on a refusal.
    static func requests(_ stream: TLSStream, ip: String, link: HelperLink) -> Bool {
        let ch = Channel(stream: stream, timeout: requestSeconds)
        let reader = HTTPReader(ch: ch, maxBody: WebApp.maxBody)
        for n in 1...maxRequests {
            stream.deadline = Sys.now() + (n == 1 ? requestSeconds : idleSeconds)
            // the first byte of a request starts its own, shorter, deadline
            guard (try? ch.scan { _ in (0, true) }) == true else { return false }
            stream.deadline = Sys.now() + requestSeconds
            let read: HTTPRead
            do { read = try reader.read { ch.put("HTTP/1.1 100 Continue\r\n\r\n"); try ch.flush() } } catch { return false }
            switch read {
            case .end:
                return false
            case .refused(let status):
                let a = local(WebAnswer.Status(code: status), HTTPReader.reasons[status] ?? "Error", refusal(status))
                ch.put(HTTPReader.response(a, close: true))
                return (try? ch.flush()) != nil
            case .request(var r):
                let head = r.method == "HEAD"
                if head { r.method = "GET" }
                let a = answer(r, ip: ip, link: link)
                let last = !r.keepAlive || n == maxRequests || link.broken
                ch.put(HTTPReader.response(a, close: last, head: head))
                guard (try? ch.flush()) != nil, !last else { return false }
            }
        }
        return false
    }

    /// After a refusal the client may still be sending (a body over the
    /// limit), and closing on unread bytes would reset the connection
    /// before it reads the answer: say we are done (FIN after the
    /// close_notify), then read and drop what comes, within bounds, until
    /// it closes too.
    static func linger(_ fd: Int32) {
        _ = shutdown(fd, Int32(SHUT_WR))
        Sys.setSocketTimeouts(fd, receive: 1, send: nil)
        let deadline = Sys.now() + drainSeconds
        var left = drainBytes
        var buf = [UInt8](repeating: 0, count: 16384)
        while left > 0, Sys.now() < deadline {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) { return }
            if n > 0 { left -= n }
        }
    }

    /// One request to the helper and its answer back. What the helper must
    /// not be sent (fields it would refuse) is answered here.
    static func answer(_ req: HTTPRequest, ip: String, link: HelperLink) -> WebAnswer {
        // a GET's body is no form
        let r = WebRequest(method: req.method, path: req.path, query: req.query, cookie: req.cookie, ip: ip,
                           body: req.method == "POST" ? req.body : [])
        guard r.isValid else { return local(.badRequest, "Bad request", "That request cannot be served here.") }
        guard let a = link.exchange(r) else {
            kill(getpid(), SIGTERM)
            return local(.serviceUnavailable, "Unavailable", "The server is restarting: try again in a moment.")
        }
        return a
    }

    static func refusal(_ status: Int) -> String {
        switch status {
        case 413: return "That form was too large."
        case 414, 431: return "That request was too long."
        case 501, 505: return "That request cannot be served here."
        default: return "That request was malformed."
        }
    }

    static func local(_ status: WebAnswer.Status, _ title: String, _ text: String) -> WebAnswer {
        WebAnswer(status: status, headers: WebApp.securityHeaders + [("Content-Type", "text/html; charset=utf-8")],
                  body: Array(page(title, nil, "<p>\(escapeHTML(text))</p>").utf8))
    }
}

/// A counting semaphore for connection slots: take() waits for a free one.
final class Slots: @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var freed = pthread_cond_t()
    private var free: Int

    init(_ n: Int) {
        free = n
        pthread_mutex_init(&lock, nil)
        pthread_cond_init(&freed, nil)
    }

    func take() {
        pthread_mutex_lock(&lock)
        while free == 0 { pthread_cond_wait(&freed, &lock) }
        free -= 1
        pthread_mutex_unlock(&lock)
    }

    func give() {
        pthread_mutex_lock(&lock)
        free += 1
        pthread_cond_signal(&freed)
        pthread_mutex_unlock(&lock)
    }
}
