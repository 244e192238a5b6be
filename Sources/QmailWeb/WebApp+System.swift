// The system administrator's pages (logins in control/webadmins): the
// hosted domains, adding and deleting them, alias domains, a domain's
// limits and cluster home host.
import QmailCore
import UserDirectory
import VHosting

extension WebApp {
    func systemRoutes(_ r: Routes) {
        on(r, .get, "/domains") { self.domainsPage($0) }
        on(r, .post, "/domains/add") { self.addDomain($0) }
        on(r, .post, "/domains/alias") { self.addAliasDomain($0) }
        on(r, .get, "/domains/delete") { self.deleteDomainPage($0) }
        on(r, .post, "/domains/delete") { self.deleteDomain($0) }
        on(r, .post, "/domains/limits") { self.setLimits($0) }
        on(r, .post, "/domains/homehost") { self.setHomeHost($0) }
    }

    /// The session when it is a system administrator's.
    func system(_ c: Call) -> (Session?, WebAnswer?) {
        let (s, no) = need(c)
        guard let s else { return (nil, no) }
        return s.isSystem ? (s, nil) : (nil, forbidden(s))
    }

    func domainsPage(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard let s = session else { return no! }
        let flash = sessions.takeFlash(c.token)
        let all = (try? admin.allDomains()) ?? []
        var rows = ""
        for d in all.sorted(by: { $0.name.string < $1.name.string }) {
            let n = d.name.string
            if d.isAlias {
                rows += "<tr><td>\(escapeHTML(n))<small>alias of \(escapeHTML(d.real.string))</small></td>"
                    + #"<td class="actions"><a href="/domains/delete?d=\#(escapeQuery(n))">Delete</a></td></tr>"#
            } else {
                let count = (try? admin.mailboxes(d).count) ?? 0
                rows += "<tr><td>\(escapeHTML(n))<small>\(count) mailbox\(count == 1 ? "" : "es")</small></td>"
                    + #"<td class="actions"><a href="/domain?d=\#(escapeQuery(n))">Manage</a> <a href="/domains/delete?d=\#(escapeQuery(n))">Delete</a></td></tr>"#
            }
        }
        let reals = all.filter { !$0.isAlias }.map { $0.name.string }.sorted()
        let options = reals.map { #"<option value="\#(escapeHTML($0))">\#(escapeHTML($0))</option>"# }.joined()
        let body = """
        <section><h2>Hosted domains</h2>
        \(rows.isEmpty ? "<p>No domains yet.</p>" : "<table><tbody>\(rows)</tbody></table>")
        </section>
        <section><h2>Add a domain</h2>
        \(postForm("/domains/add", s, [:], """
        \(field("domain", "Domain name", required: true, hint: "for example example.org"))
        \(field("password", "Password of its postmaster", type: "password", required: true, extra: #" autocomplete="new-password""#))
        \(field("quota", "Postmaster's quota", hint: "for example 100M; empty for none"))
        <button type="submit">Add domain</button>
        """))
        </section>
        <section><h2>Add an alias domain</h2>
        <p><small>Mail to every address of the alias domain goes to the same address of the real domain.</small></p>
        \(postForm("/domains/alias", s, [:], """
        \(field("alias", "Alias domain", required: true))
        <label for="f-real">Real domain</label><select id="f-real" name="real">\(options)</select>
        <button type="submit">Add alias domain</button>
        """))
        </section>
        """
        return answer(.ok, page("Domains", s, flash: flash, body))
    }

    func addDomain(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard session != nil else { return no! }
        let name = c.form.text("domain").lowercased()
        let password = c.form["password"] ?? ""
        if let why = passwordProblem(password) { return refuse(c, back: "/domains", why) }
        let quota = c.form.text("quota")
        return change(c, back: "/domains", done: "Domain \(name) added, with its postmaster mailbox.") {
            _ = try admin.run("vadddomain", (quota.isEmpty ? [] : ["-q", quota]) + ["--", name, password])
        }
    }

    func addAliasDomain(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard session != nil else { return no! }
        let alias = c.form.text("alias").lowercased(), real = c.form.text("real").lowercased()
        return change(c, back: "/domains", done: "\(alias) is now an alias of \(real).") {
            _ = try admin.run("vaddaliasdomain", ["--", real, alias])
        }
    }

    func deleteDomainPage(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard let s = session else { return no! }
        let name = c.value("d").lowercased()
        if name == s.domain { return refuse(c, back: "/domains", "\(name) holds the mailbox you are logged in with: it stays.") }
        guard let d = (try? admin.allDomains())?.first(where: { $0.name.string == name }) else {
            return refuse(c, back: "/domains", "Domain \(name) is not hosted here.")
        }
        var what: String
        if d.isAlias {
            what = "<p>\(escapeHTML(name)) is an alias of \(escapeHTML(d.real.string)). Deleting it stops accepting mail for it; "
                + "the mailboxes of \(escapeHTML(d.real.string)) stay.</p>"
        } else {
            guard let sum = try? admin.summary(name) else { return refuse(c, back: "/domains", "Domain \(name) cannot be read now.") }
            what = "<p>Deleting <strong>\(escapeHTML(name))</strong> removes <strong>\(sum.mailboxes) mailbox\(sum.mailboxes == 1 ? "" : "es")</strong> "
                + "holding <strong>\(sum.messages) message\(sum.messages == 1 ? "" : "s")</strong> (\(bytesText(sum.bytes))), "
                + "\(sum.aliases) alias\(sum.aliases == 1 ? "" : "es")"
            what += sum.aliasDomains.isEmpty ? "" : ", and its alias domains \(escapeHTML(sum.aliasDomains.joined(separator: ", ")))"
            what += ". The messages cannot be recovered.</p>"
        }
        let body = """
        <section><h2>Delete \(escapeHTML(name))?</h2>
        \(what)
        \(postForm("/domains/delete", s, ["d": name, "confirm": "yes"], #"<button type="submit" class="danger">Delete \#(escapeHTML(name))</button>"#))
        <p><a href="/domains">Cancel</a></p>
        </section>
        """
        return answer(.ok, page("Delete a domain", s, body))
    }

    func deleteDomain(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard session != nil else { return no! }
        let name = c.form.text("d").lowercased()
        guard c.form.text("confirm") == "yes" else { return redirect("/domains/delete?d=" + escapeQuery(name)) }
        if name == session!.domain { return refuse(c, back: "/domains", "\(name) holds the mailbox you are logged in with: it stays.") }
        return change(c, back: "/domains", done: "Domain \(name) deleted.") {
            _ = try admin.run("vdeldomain", ["--", name])
        }
    }

    func setLimits(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard session != nil else { return no! }
        let name = c.form.text("d").lowercased()
        let back = "/domain?d=" + escapeQuery(name)
        func count(_ f: String) -> Int?? {
            let t = c.form.text(f)
            if t.isEmpty { return .some(nil) }
            return Decimal.parse(Array(t.utf8)).map { .some($0) }
        }
        guard let mailboxes = count("maxmailboxes"), let aliases = count("maxaliases") else {
            return refuse(c, back: back, "Limits are whole numbers (empty: no limit).")
        }
        let q = c.form.text("defaultquota")
        var quota: Quota? = nil
        if !q.isEmpty {
            guard let parsed = Quota.parse(Array(q.utf8)) else { return refuse(c, back: back, "Bad quota \(q) (for example 100M, or empty).") }
            quota = parsed
        }
        return change(c, back: back, done: "Limits of \(name) saved.") {
            try admin.setLimits(name, DomainLimits(maxMailboxes: mailboxes, maxAliases: aliases, defaultQuota: quota))
        }
    }

    /// A domain's default cluster home host (the system administrator's
    /// alone: it decides where mail of the domain's mailboxes goes).
    func setHomeHost(_ c: Call) -> WebAnswer {
        let (session, no) = system(c)
        guard session != nil else { return no! }
        let name = c.form.text("d").lowercased()
        let back = "/domain?d=" + escapeQuery(name)
        let host = c.form.text("host").lowercased()
        if !host.isEmpty && HomeHost.parse(Array(host.utf8)) == nil { return refuse(c, back: back, "\(host) is not a host name.") }
        return change(c, back: back, done: host.isEmpty ? "Mailboxes of \(name) now have no home host." : "Mailboxes of \(name) are now held on \(host).") {
            try admin.setDomainHomeHost(name, host)
        }
    }

    /// Why a new password cannot be taken, or nil. "-" would make the
    /// commands read the password from their input.
    func passwordProblem(_ p: String) -> String? {
        if p.isEmpty { return "Give a password." }
        if p == "-" || p.hasPrefix("-") && p.count < 2 { return "Choose another password." }
        if p.utf8.count < 8 { return "A password needs at least 8 characters." }
        if p.utf8.count > Names.maxPassword { return "A password may have at most \(Names.maxPassword) bytes." }
        if p.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 }) { return "A password may not contain line breaks." }
        return nil
    }
}
