// The web administration's requests: the session from its cookie, the
// CSRF check of every POST, and the answer (a page, a redirect after a
// change, 403 for anything outside the session's scope). The pages
// themselves are in WebApp+System.swift (domains), WebApp+Domain.swift
// (a domain's postmaster) and WebApp+User.swift (a mailbox's own).
import HTTPTypes
import Hummingbird
import QmailCore
import UserDirectory
import VHosting

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

/// One request as the pages see it.
struct Call {
    let path: String
    let query: Form
    let form: Form
    let token: String?
    let session: Session?
    let cookies: [String: String]
    let ip: String

    /// A field of the form (POST) or else the query (GET).
    func value(_ name: String) -> String { form[name] != nil ? form.text(name) : query.text(name) }
}

final class WebApp: @unchecked Sendable {
    let home: QmailHome
    let sessions = SessionStore()
    let login: LoginCheck
    /// The session cookie; "__Host-": only over HTTPS, only for this host.
    static let sessionCookie = "__Host-qwa"
    /// Before login: the double-submit token of the login form.
    static let loginCookie = "__Host-qwalogin"
    static let maxBody = 64 << 10

    init(home: QmailHome) {
        self.home = home
        self.login = LoginCheck(home: home)
    }

    var admin: Admin { Admin(home: home) }

    func routes(_ r: Router<WebContext>) {
        r.get("/style.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                     body: .init(byteBuffer: ByteBuffer(string: styleSheet)))
        }
        on(r, .get, "/") { await self.home($0) }
        on(r, .get, "/login") { await self.loginPage($0) }
        on(r, .post, "/login") { await self.doLogin($0) }
        on(r, .post, "/logout") { await self.doLogout($0) }
        systemRoutes(r)
        domainRoutes(r)
        userRoutes(r)
    }

    func on(_ r: Router<WebContext>, _ method: HTTPRequest.Method, _ path: String, _ h: @escaping @Sendable (Call) async -> Response) {
        r.on(RouterPath(path), method: method) { req, ctx in await self.handle(req, ctx, h) }
    }

    func handle(_ req: Request, _ ctx: WebContext, _ h: (Call) async -> Response) async -> Response {
        let cookies = Form.cookies(req.headers[.cookie])
        let token = cookies[WebApp.sessionCookie]
        let session = await sessions.session(token)
        var form = Form([])
        if req.method == .post {
            guard let body = try? await req.body.collect(upTo: WebApp.maxBody) else {
                return answer(.contentTooLarge, page("Too large", session, "<p>That form was too large.</p>"))
            }
            form = Form(Array(body.readableBytesView))
            if req.uri.path != "/login" {
                guard let s = session else { return forbidden(nil, "Your session has ended: log in again.") }
                guard ConstantTime.equals(Array(form.text("csrf").utf8), Array(s.csrf.utf8)) else {
                    return forbidden(s, "That form did not come from this session (missing or old security token): reload the page and try again.")
                }
            }
        }
        return await h(Call(path: req.uri.path, query: Form(query: req.uri.query), form: form, token: token,
                            session: session, cookies: cookies, ip: ctx.remoteIP))
    }

    // MARK: answers

    func answer(_ status: HTTPResponse.Status, _ html: String, cookies: [String] = []) -> Response {
        var h = WebApp.securityHeaders
        h[.contentType] = "text/html; charset=utf-8"
        if !cookies.isEmpty { h[values: .setCookie] = cookies }
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// After a change: to the page that shows it (POST, redirect, GET).
    func redirect(_ to: String, cookies: [String] = []) -> Response {
        var h = WebApp.securityHeaders
        h[.location] = to
        if !cookies.isEmpty { h[values: .setCookie] = cookies }
        return Response(status: .seeOther, headers: h)
    }

    func forbidden(_ s: Session?, _ why: String = "That is outside what this login may manage.") -> Response {
        answer(.forbidden, page("Not allowed", s, #"<p class="error" role="alert">\#(escapeHTML(why))</p><p><a href="/">Back</a></p>"#))
    }

    static let securityHeaders: HTTPFields = [
        .cacheControl: "no-store",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        .contentSecurityPolicy: "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ]

    static func cookie(_ name: String, _ value: String, clear: Bool = false) -> String {
        "\(name)=\(value); Path=/; Secure; HttpOnly; SameSite=Strict\(clear ? "; Max-Age=0" : "")"
    }

    /// Runs one change and comes back to `back` with its outcome as the
    /// next page's message. The admin library's refusals are shown as
    /// they are (they never contain a password); a system failure says so.
    func change(_ c: Call, back: String, done: String, _ body: () throws -> Void) async -> Response {
        let f: Flash
        do {
            try body()
            f = Flash(ok: true, text: done)
        } catch let e as AdminError {
            switch e {
            case .system(let why): f = Flash(ok: false, text: "The server could not do that now (nothing was changed, or only part of it; try again later): \(why)")
            default: f = Flash(ok: false, text: "\(e)")
            }
        } catch {
            f = Flash(ok: false, text: "\(error)")
        }
        await sessions.setFlash(c.token, f)
        return redirect(back)
    }

    /// A change the form itself got wrong, said before anything is done.
    func refuse(_ c: Call, back: String, _ why: String) async -> Response {
        await sessions.setFlash(c.token, Flash(ok: false, text: why))
        return redirect(back)
    }

    // MARK: login

    func home(_ c: Call) async -> Response {
        guard let s = c.session else { return redirect("/login") }
        if s.isSystem { return redirect("/domains") }
        if s.isPostmaster { return redirect("/domain?d=" + escapeQuery(s.domain)) }
        return redirect("/me")
    }

    func loginPage(_ c: Call, error: String? = nil, status: HTTPResponse.Status = .ok) async -> Response {
        let pre = randomToken()
        let body = """
        <section>
        <form method="post" action="/login">
        <input type="hidden" name="pre" value="\(pre)">
        \(field("login", "Mail address", value: c.form.text("login"), required: true, extra: #" inputmode="email" autocomplete="username" autocapitalize="none" autofocus"#))
        \(field("password", "Password", type: "password", required: true, extra: #" autocomplete="current-password""#))
        <button type="submit">Log in</button>
        </form>
        </section>
        <p><small>Your mail address and mail password. A domain's postmaster manages the domain's mailboxes; each mailbox manages its own forwarding, vacation message and password.</small></p>
        """
        return answer(status, page("Log in", nil, flash: error.map { Flash(ok: false, text: $0) }, body),
                      cookies: [WebApp.cookie(WebApp.loginCookie, pre)])
    }

    func doLogin(_ c: Call) async -> Response {
        let pre = c.cookies[WebApp.loginCookie] ?? ""
        guard !pre.isEmpty, ConstantTime.equals(Array(pre.utf8), Array(c.form.text("pre").utf8)) else {
            return await loginPage(c, error: "The login form had expired: please log in again.", status: .forbidden)
        }
        guard let address = login.canonical(c.form.text("login")) else {
            return await loginPage(c, error: "Log in with your full mail address (name@domain).", status: .badRequest)
        }
        let password = c.form["password"] ?? ""
        switch login.check(login: address, password: password, remote: c.ip) {
        case .ok: break
        case .rejected: return await loginPage(c, error: "Wrong mail address or password.", status: .unauthorized)
        case .limited: return await loginPage(c, error: "Too many failed logins from your address or for this account: wait a while and try again.", status: .tooManyRequests)
        case .temporary: return await loginPage(c, error: "The password could not be checked just now: try again in a moment.", status: .serviceUnavailable)
        }
        let local = address.split(separator: "@", maxSplits: 1).first.map(String.init) ?? ""
        var domain = address.split(separator: "@", maxSplits: 1).last.map(String.init) ?? ""
        var hasMailbox = false
        if let (_, d) = try? admin.mailbox(address) {
            domain = d.name.string
            hasMailbox = true
        }
        let isSystem = login.isSystemAdministrator(address)
        let token = await sessions.open(address: address, domain: domain, isSystem: isSystem,
                                        isPostmaster: local == "postmaster" && hasMailbox, hasMailbox: hasMailbox)
        await sessions.close(c.token)
        return redirect("/", cookies: [WebApp.cookie(WebApp.sessionCookie, token), WebApp.cookie(WebApp.loginCookie, "", clear: true)])
    }

    func doLogout(_ c: Call) async -> Response {
        await sessions.close(c.token)
        return redirect("/login", cookies: [WebApp.cookie(WebApp.sessionCookie, "", clear: true)])
    }

    // MARK: scope

    /// The session of a page, or nil (and the answer to give instead).
    func need(_ c: Call) -> (Session?, Response?) {
        guard let s = c.session else { return (nil, c.form.values.isEmpty ? redirect("/login") : forbidden(nil, "Your session has ended: log in again.")) }
        return (s, nil)
    }

    /// The domain named by the request's "d", when this session may manage
    /// it: its postmaster's own domain, or any for a system administrator.
    /// An unknown domain is "not allowed" too for anyone but the latter,
    /// so nobody learns which domains are hosted here.
    func managedDomain(_ c: Call) async -> (Session, VDomain)? {
        guard let s = c.session else { return nil }
        guard let d = try? admin.domain(c.value("d")) else { return nil }
        guard s.mayManage(domain: d.name.string) else { return nil }
        return (s, d)
    }
}
