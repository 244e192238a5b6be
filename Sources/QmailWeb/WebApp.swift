// The web administration's requests, in the root helper: the session from
// its cookie, the CSRF check of every POST, and the answer (a page, a
// redirect after a change, 403 for anything outside the session's scope).
// The requests come as WebRequest frames from the network process
// (WebNetwork.swift), which alone speaks HTTP. The pages themselves are in
// WebApp+System.swift (domains), WebApp+Domain.swift (a domain's
// postmaster) and WebApp+User.swift (a mailbox's own).
import QmailCore
import UserDirectory
import VHosting

/// The pages by method and path: what a router was, without HTTP types.
final class Routes {
    enum Method: String { case get = "GET", post = "POST" }
    typealias Handler = @Sendable (Call) -> WebAnswer
    private(set) var table: [String: Handler] = [:]

    func add(_ method: Method, _ path: String, _ h: @escaping Handler) { table[method.rawValue + " " + path] = h }
    func handler(_ method: String, _ path: String) -> Handler? { table[method + " " + path] }
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

    /// Built once, after the rest (the pages are methods of this object).
    private(set) var pages = Routes()

    init(home: QmailHome) {
        self.home = home
        self.login = LoginCheck(home: home)
        pages = routes()
    }

    var admin: Admin { Admin(home: home) }

    func routes() -> Routes {
        let r = Routes()
        r.add(.get, "/style.css") { _ in
            WebAnswer(status: .ok, headers: [("Content-Type", "text/css; charset=utf-8"), ("Cache-Control", "max-age=3600")],
                      body: Array(styleSheet.utf8))
        }
        on(r, .get, "/") { self.home($0) }
        on(r, .get, "/login") { self.loginPage($0) }
        on(r, .post, "/login") { self.doLogin($0) }
        on(r, .post, "/logout") { self.doLogout($0) }
        systemRoutes(r)
        domainRoutes(r)
        userRoutes(r)
        return r
    }

    func on(_ r: Routes, _ method: Routes.Method, _ path: String, _ h: @escaping Routes.Handler) {
        r.add(method, path) { self.handle($0, post: method == .post, h) }
    }

    /// One request from the network process; its method and path name the page.
    func respond(_ req: WebRequest) -> WebAnswer {
        guard let h = pages.handler(req.method, req.path) else {
            return answer(.notFound, page("Not found", nil, #"<p>There is no such page here.</p><p><a href="/">Back</a></p>"#))
        }
        // a GET's body is no form (the network process sends none)
        return h(Call(path: req.path, query: Form(query: req.query), form: Form(req.method == "POST" ? req.body : []), token: nil,
                      session: nil, cookies: Form.cookies(req.cookie), ip: req.ip))
    }

    /// The session and CSRF checks before a page: `c` has the request's
    /// fields, not yet its session.
    func handle(_ c: Call, post: Bool, _ h: (Call) -> WebAnswer) -> WebAnswer {
        let token = c.cookies[WebApp.sessionCookie]
        let session = sessions.session(token)
        if post && c.path != "/login" {
            guard let s = session else { return forbidden(nil, "Your session has ended: log in again.") }
            guard ConstantTime.equals(Array(c.form.text("csrf").utf8), Array(s.csrf.utf8)) else {
                return forbidden(s, "That form did not come from this session (missing or old security token): reload the page and try again.")
            }
        }
        return h(Call(path: c.path, query: c.query, form: c.form, token: token, session: session, cookies: c.cookies, ip: c.ip))
    }

    // MARK: answers

    func answer(_ status: WebAnswer.Status, _ html: String, cookies: [String] = []) -> WebAnswer {
        WebAnswer(status: status, headers: WebApp.securityHeaders + [("Content-Type", "text/html; charset=utf-8")]
                      + cookies.map { ("Set-Cookie", $0) }, body: Array(html.utf8))
    }

    /// After a change: to the page that shows it (POST, redirect, GET).
    func redirect(_ to: String, cookies: [String] = []) -> WebAnswer {
        WebAnswer(status: .seeOther, headers: WebApp.securityHeaders + [("Location", to)] + cookies.map { ("Set-Cookie", $0) })
    }

    func forbidden(_ s: Session?, _ why: String = "That is outside what this login may manage.") -> WebAnswer {
        answer(.forbidden, page("Not allowed", s, #"<p class="error" role="alert">\#(escapeHTML(why))</p><p><a href="/">Back</a></p>"#))
    }

    static let securityHeaders: [(String, String)] = [
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ]

    static func cookie(_ name: String, _ value: String, clear: Bool = false) -> String {
        "\(name)=\(value); Path=/; Secure; HttpOnly; SameSite=Strict\(clear ? "; Max-Age=0" : "")"
    }

    /// Runs one change and comes back to `back` with its outcome as the
    /// next page's message. The admin library's refusals are shown as
    /// they are (they never contain a password); a system failure says so.
    func change(_ c: Call, back: String, done: String, _ body: () throws -> Void) -> WebAnswer {
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
        sessions.setFlash(c.token, f)
        return redirect(back)
    }

    /// A change the form itself got wrong, said before anything is done.
    func refuse(_ c: Call, back: String, _ why: String) -> WebAnswer {
        sessions.setFlash(c.token, Flash(ok: false, text: why))
        return redirect(back)
    }

    // MARK: login

    func home(_ c: Call) -> WebAnswer {
        guard let s = c.session else { return redirect("/login") }
        if s.isSystem { return redirect("/domains") }
        if s.isPostmaster { return redirect("/domain?d=" + escapeQuery(s.domain)) }
        return redirect("/me")
    }

    func loginPage(_ c: Call, error: String? = nil, status: WebAnswer.Status = .ok) -> WebAnswer {
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

    func doLogin(_ c: Call) -> WebAnswer {
        let pre = c.cookies[WebApp.loginCookie] ?? ""
        guard !pre.isEmpty, ConstantTime.equals(Array(pre.utf8), Array(c.form.text("pre").utf8)) else {
            return loginPage(c, error: "The login form had expired: please log in again.", status: .forbidden)
        }
        guard let address = login.canonical(c.form.text("login")) else {
            return loginPage(c, error: "Log in with your full mail address (name@domain).", status: .badRequest)
        }
        let password = c.form["password"] ?? ""
        let (verdict, found) = login.check(login: address, password: password, remote: c.ip)
        switch verdict {
        case .ok: break
        case .rejected: return loginPage(c, error: "Wrong mail address or password.", status: .unauthorized)
        case .limited: return loginPage(c, error: "Too many failed logins from your address or for this account: wait a while and try again.", status: .tooManyRequests)
        case .temporary: return loginPage(c, error: "The password could not be checked just now: try again in a moment.", status: .serviceUnavailable)
        }
        let local = address.split(separator: "@", maxSplits: 1).first.map(String.init) ?? ""
        var domain = address.split(separator: "@", maxSplits: 1).last.map(String.init) ?? ""
        // an LDAP or MySQL login's mailbox is the directory's, even where
        // the file store has one of the same name
        var hasMailbox = found != nil
        if let d = try? admin.domain(domain) { domain = d.name.string }
        if found == nil, (try? admin.mailbox(address)) != nil { hasMailbox = true }
        let isSystem = login.isSystemAdministrator(address)
        let token = sessions.open(address: address, domain: domain, isSystem: isSystem,
                                  isPostmaster: local == "postmaster" && hasMailbox, hasMailbox: hasMailbox,
                                  directoryMailbox: found)
        sessions.close(c.token)
        return redirect("/", cookies: [WebApp.cookie(WebApp.sessionCookie, token), WebApp.cookie(WebApp.loginCookie, "", clear: true)])
    }

    func doLogout(_ c: Call) -> WebAnswer {
        sessions.close(c.token)
        return redirect("/login", cookies: [WebApp.cookie(WebApp.sessionCookie, "", clear: true)])
    }

    // MARK: scope

    /// The session of a page, or nil (and the answer to give instead).
    func need(_ c: Call) -> (Session?, WebAnswer?) {
        guard let s = c.session else { return (nil, c.form.values.isEmpty ? redirect("/login") : forbidden(nil, "Your session has ended: log in again.")) }
        return (s, nil)
    }

    /// The domain named by the request's "d", when this session may manage
    /// it: its postmaster's own domain, or any for a system administrator.
    /// An unknown domain is "not allowed" too for anyone but the latter,
    /// so nobody learns which domains are hosted here.
    func managedDomain(_ c: Call) -> (Session, VDomain)? {
        guard let s = c.session else { return nil }
        guard let d = try? admin.domain(c.value("d")) else { return nil }
        guard s.mayManage(domain: d.name.string) else { return nil }
        return (s, d)
    }
}
