// The network half of qmail-webadmin: TLS and HTTP (Hummingbird, SwiftNIO,
// NIOSSL) in a process that gave up root before it read a byte from the
// network. It knows no session, password or file: each request goes as
// one WebRequest frame to the root helper (WebHelper.swift), one at a
// time, and its WebAnswer comes back as the response. It ends when the
// helper does.
#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import NIOSSL
import QmailCore
import QmailNet

/// The request context: Hummingbird's core, and the peer's address (for
/// the per-address login limits and the log).
public struct WebContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteIP: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress ?? ""
    }
}

/// Our end of the socketpair to the helper: one exchange at a time (the
/// actor queues the others). Once the helper is gone it stays gone.
actor HelperLink {
    private let ch: Channel
    private(set) var broken = false
    /// A change may take a while (a domain's deletion, a directory login).
    static let answerSeconds = 600

    init(fd: Int32) { ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: HelperLink.answerSeconds) }

    func exchange(_ r: WebRequest) -> WebAnswer? {
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

public struct WebNetwork: Sendable {
    let helper: Int32
    /// The root helper, our parent: when it is gone, so are we.
    let parent: pid_t
    let settings: WebAdmin.Settings
    let tls: TLSConfiguration

    func run() async -> Int32 {
        let link = HelperLink(fd: helper)
        let watch = Task {
            while !Task.isCancelled, getppid() == parent { try? await Task.sleep(for: .seconds(1)) }
            if !Task.isCancelled { kill(getpid(), SIGTERM) }
        }
        defer { watch.cancel() }
        let address = settings.address
        do {
            let app = Application(responder: CallbackResponder<WebContext> { req, ctx in await WebNetwork.forward(req, ctx, link) },
                                  server: try .tls(.http1(), tlsConfiguration: tls),
                                  configuration: .init(address: .hostname(address, port: settings.port), serverName: nil),
                                  onServerRunning: { channel in
                                      let port = channel.localAddress?.port ?? 0
                                      Sys.warn("qmail-webadmin: listening on https://\(address.contains(":") ? "[\(address)]" : address):\(port)/ as uid \(getuid())")
                                  })
            try await app.runService()
        } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            return QmailExit.temporary
        }
        if await link.broken || getppid() != parent {
            Sys.warn("qmail-webadmin: fatal: the helper is gone")
            return QmailExit.temporary
        }
        return QmailExit.success
    }

    /// One request to the helper and its answer back. What the helper must
    /// not be sent (a body over the limit, fields it would refuse) is
    /// answered here.
    static func forward(_ req: Request, _ ctx: WebContext, _ link: HelperLink) async -> Response {
        var body: [UInt8] = []
        if req.method == .post {
            guard let b = try? await req.body.collect(upTo: WebApp.maxBody) else {
                return response(local(.contentTooLarge, "Too large", "That form was too large."))
            }
            body = Array(b.readableBytesView)
        }
        // an IPv6 address's zone (fe80::1%eth0) says nothing about the peer
        let ip = String(ctx.remoteIP.prefix { $0 != "%" })
        let r = WebRequest(method: req.method.rawValue, path: req.uri.path, query: req.uri.query ?? "",
                           cookie: req.headers[.cookie] ?? "", ip: ip, body: body)
        guard r.isValid else { return response(local(.badRequest, "Bad request", "That request cannot be served here.")) }
        guard let a = await link.exchange(r) else {
            kill(getpid(), SIGTERM)
            return response(local(.serviceUnavailable, "Unavailable", "The server is restarting: try again in a moment."))
        }
        return response(a)
    }

    static func local(_ status: WebAnswer.Status, _ title: String, _ text: String) -> WebAnswer {
        WebAnswer(status: status, headers: WebApp.securityHeaders + [("Content-Type", "text/html; charset=utf-8")],
                  body: Array(page(title, nil, "<p>\(escapeHTML(text))</p>").utf8))
    }

    static func response(_ a: WebAnswer) -> Response {
        var h = HTTPFields()
        for (n, v) in a.headers { if let name = HTTPField.Name(n) { h.append(HTTPField(name: name, value: v)) } }
        return Response(status: HTTPResponse.Status(code: a.status.code), headers: h, body: .init(byteBuffer: ByteBuffer(bytes: a.body)))
    }
}
