// A domain's pages, for its postmaster (and the system administrator):
// mailboxes, aliases and forwards, catch-all, the DNS records to publish,
// and (system administrator only) the domain's limits and cluster home
// host. A mailbox's home host is shown, never changed here: changing it
// without moving the Maildir strands the mail (vmoveuser moves both).
import QmailCore
import UserDirectory
import VDelivery
import VHosting

extension WebApp {
    func domainRoutes(_ r: Routes) {
        on(r, .get, "/domain") { self.domainPage($0) }
        on(r, .get, "/domain/mailbox") { self.mailboxPage($0) }
        on(r, .post, "/domain/mailbox/add") { self.addMailbox($0) }
        on(r, .get, "/domain/mailbox/delete") { self.deleteMailboxPage($0) }
        on(r, .post, "/domain/mailbox/delete") { self.deleteMailbox($0) }
        on(r, .post, "/domain/mailbox/password") { self.mailboxPassword($0) }
        on(r, .post, "/domain/mailbox/quota") { self.mailboxQuota($0) }
        on(r, .post, "/domain/mailbox/forward") { self.mailboxForward($0) }
        on(r, .post, "/domain/alias/add") { self.addAlias($0) }
        on(r, .post, "/domain/alias/delete") { self.deleteAlias($0) }
        on(r, .post, "/domain/catchall") { self.setCatchAll($0) }
    }

    func scoped(_ c: Call) -> ((Session, VDomain)?, WebAnswer?) {
        let (s, no) = need(c)
        guard let s else { return (nil, no) }
        guard let sd = managedDomain(c) else { return (nil, forbidden(s)) }
        return (sd, nil)
    }

    /// The mailbox of the request's "u" in the scoped domain: a bare name,
    /// so no form can name another domain's mailbox.
    func mailboxAddress(_ c: Call, _ d: VDomain) -> String? {
        let u = c.value("u").lowercased()
        guard !u.isEmpty, !u.contains("@"), (try? Names.user(Array(u.utf8))) != nil else { return nil }
        return u + "@" + d.name.string
    }

    func domainLink(_ d: VDomain) -> String { "/domain?d=" + escapeQuery(d.name.string) }

    func domainPage(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (s, d) = sd else { return no! }
        let flash = sessions.takeFlash(c.token)
        let name = d.name.string
        let users = ((try? admin.mailboxes(d)) ?? []).sorted { $0.name.string < $1.name.string }
        var rows = ""
        for u in users {
            let n = u.name.string
            let used = admin.usage(u).map { "\(bytesText($0.bytes)) in \($0.count) message\($0.count == 1 ? "" : "s")" } ?? "usage unknown"
            let link = "/domain/mailbox?d=\(escapeQuery(name))&u=\(escapeQuery(n))"
            rows += #"<tr><td><a href="\#(escapeHTML(link))">\#(escapeHTML(n))</a><small>\#(escapeHTML(used)); quota \#(escapeHTML(quotaText(u.quota)))</small></td>"#
                + #"<td class="actions"><a href="\#(escapeHTML(link))">Edit</a>"#
                + (n == "postmaster" ? "" : #"<a href="/domain/mailbox/delete?d=\#(escapeQuery(name))&amp;u=\#(escapeQuery(n))">Delete</a>"#)
                + "</td></tr>"
        }
        var aliasRows = ""
        var grouped: [(String, [String])] = []
        for a in (try? admin.aliases(d)) ?? [] {
            if let i = grouped.firstIndex(where: { $0.0 == a.name.string }) { grouped[i].1.append(a.target.string) } else { grouped.append((a.name.string, [a.target.string])) }
        }
        for (n, targets) in grouped.sorted(by: { $0.0 < $1.0 }) {
            aliasRows += "<tr><td>\(escapeHTML(n))@\(escapeHTML(name))<small>to \(targets.map(escapeHTML).joined(separator: ", "))</small></td><td class=\"actions\">"
                + postForm("/domain/alias/delete", s, ["d": name, "a": n], #"<button type="submit" class="link">Delete</button>"#, cls: "inline")
                + "</td></tr>"
        }
        let catchAll = admin.catchAllAction(d)
        let mode = catchAll == VDeliver.noMailbox ? "bounce" : catchAll == "delete" ? "delete" : "forward"
        let dns = ((try? admin.dnsRecords(name)) ?? ["; (the records cannot be read now)"]).joined(separator: "\n")
        var adminSections = ""
        if s.isSystem {
            let l = admin.limits(d)
            adminSections = """
            <section><h2>Limits (system administrator)</h2>
            \(postForm("/domains/limits", s, ["d": name], """
            \(field("maxmailboxes", "Most mailboxes", type: "number", value: l.maxMailboxes.map(String.init) ?? "", hint: "empty: no limit", extra: #" min="0""#))
            \(field("maxaliases", "Most aliases", type: "number", value: l.maxAliases.map(String.init) ?? "", hint: "empty: no limit", extra: #" min="0""#))
            \(field("defaultquota", "Quota of new mailboxes", value: quotaInput(l.defaultQuota), hint: "for example 100M; empty: none"))
            <button type="submit">Save limits</button>
            """))
            </section>
            <section><h2>Cluster home host (system administrator)</h2>
            \(postForm("/domains/homehost", s, ["d": name], """
            \(field("host", "Host holding the mailboxes", value: d.homeHost ?? "",
                    hint: "for mailboxes naming no host of their own; empty: every host its own. Their Maildirs are not moved."))
            <button type="submit">Save home host</button>
            """))
            </section>
            """
        } else if let h = d.homeHost {
            adminSections = "<section><p>The mailboxes of \(escapeHTML(name)) are held on host \(escapeHTML(h)).</p></section>"
        }
        let body = """
        <section><h2>Mailboxes</h2>
        <table><tbody>\(rows)</tbody></table>
        </section>
        <section><h2>Add a mailbox</h2>
        \(postForm("/domain/mailbox/add", s, ["d": name], """
        \(field("u", "Name (before @\(name))", required: true))
        \(field("password", "Password", type: "password", required: true, extra: #" autocomplete="new-password""#))
        \(field("quota", "Quota", hint: "for example 100M; empty for the domain's default"))
        <button type="submit">Add mailbox</button>
        """))
        </section>
        <section><h2>Aliases and forwards</h2>
        \(aliasRows.isEmpty ? "<p>None yet.</p>" : "<table><tbody>\(aliasRows)</tbody></table>")
        \(postForm("/domain/alias/add", s, ["d": name], """
        \(field("a", "Address (before @\(name))", required: true))
        \(field("target", "Goes to", required: true, hint: "a mailbox here or an address elsewhere, name@domain"))
        <button type="submit">Add alias</button>
        """))
        </section>
        <section><h2>Mail for addresses that do not exist</h2>
        \(postForm("/domain/catchall", s, ["d": name], """
        <label class="check"><input type="radio" name="mode" value="bounce"\(mode == "bounce" ? " checked" : "")> Bounce it to the sender</label>
        <label class="check"><input type="radio" name="mode" value="delete"\(mode == "delete" ? " checked" : "")> Delete it</label>
        <label class="check"><input type="radio" name="mode" value="forward"\(mode == "forward" ? " checked" : "")> Deliver it to (catch-all):</label>
        \(field("target", "Catch-all mailbox or address", value: mode == "forward" ? catchAll : "", hint: "a mailbox name here, or name@domain"))
        <button type="submit">Save</button>
        """))
        </section>
        <section><h2>DNS records to publish</h2>
        <p><small>SPF and DMARC to start with, and the DKIM keys this server signs \(escapeHTML(name))'s mail with.</small></p>
        <pre>\(escapeHTML(dns))</pre>
        </section>
        \(adminSections)
        """
        return answer(.ok, page(name, s, flash: flash, body))
    }

    func mailboxPage(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (s, d) = sd else { return no! }
        guard let address = mailboxAddress(c, d), let (u, _) = try? admin.mailbox(address) else {
            return refuse(c, back: domainLink(d), "No such mailbox.")
        }
        let flash = sessions.takeFlash(c.token)
        let f = (try? admin.forwarding(address)) ?? Forwarding()
        let fields = ["d": d.name.string, "u": u.name.string]
        let used = admin.usage(u).map { "\(bytesText($0.bytes)) in \($0.count) messages" } ?? "unknown"
        let body = """
        <section><p>Uses \(escapeHTML(used)); quota \(escapeHTML(quotaText(u.quota))).</p>
        \(homeHostLine(u, d))
        <p><a href="\(escapeHTML(domainLink(d)))">Back to \(escapeHTML(d.name.string))</a></p></section>
        <section><h2>Set a new password</h2>
        \(postForm("/domain/mailbox/password", s, fields, """
        \(field("password", "New password", type: "password", required: true, extra: #" autocomplete="new-password""#))
        \(field("password2", "New password again", type: "password", required: true, extra: #" autocomplete="new-password""#))
        <button type="submit">Set password</button>
        """))
        </section>
        <section><h2>Quota</h2>
        \(postForm("/domain/mailbox/quota", s, fields, """
        \(field("quota", "Quota", value: quotaInput(u.quota), hint: "for example 100M; empty: none"))
        <button type="submit">Set quota</button>
        """))
        </section>
        \(forwardSection("/domain/mailbox/forward", s, fields, f))
        \(u.name.string == "postmaster" ? "" : #"<section><a href="/domain/mailbox/delete?d=\#(escapeQuery(d.name.string))&amp;u=\#(escapeQuery(u.name.string))">Delete this mailbox</a></section>"#)
        """
        return answer(.ok, page(address, s, flash: flash, body))
    }

    /// Where a mailbox is held in a cluster (nothing when every host holds
    /// its own). Read-only: a move is vmoveuser's, which moves the mail too.
    func homeHostLine(_ u: VUser, _ d: VDomain) -> String {
        guard let h = u.homeHost ?? d.homeHost else { return "" }
        return "<p>Held on host \(escapeHTML(h))\(u.homeHost == nil ? " (the domain's)" : "").</p>"
    }

    /// The forwarding form, for a mailbox's own page and its postmaster's.
    func forwardSection(_ action: String, _ s: Session, _ fields: [String: String], _ f: Forwarding) -> String {
        """
        <section><h2>Forwarding</h2>
        \(postForm(action, s, fields, """
        <label for="f-targets">Forward mail to</label>
        <textarea id="f-targets" name="targets" rows="3">\(escapeHTML(f.targets.map { $0.string }.joined(separator: "\n")))</textarea>
        <small>One address per line; empty: no forwarding, mail stays here.</small>
        \(checkbox("keep", "Keep a copy in this mailbox too", checked: f.keepCopy || f.targets.isEmpty))
        <button type="submit">Save forwarding</button>
        """))
        </section>
        """
    }

    /// The forwarding a form asks for.
    func requestedForwarding(_ c: Call) -> Forwarding {
        let targets = c.form.text("targets").split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "," || $0 == " " })
            .map { Array($0.trimmingCharacters(in: " \t").utf8) }.filter { !$0.isEmpty }
        return Forwarding(targets: targets, keepCopy: c.form.text("keep") == "yes")
    }

    func addMailbox(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        let back = domainLink(d)
        guard let address = mailboxAddress(c, d) else { return refuse(c, back: back, "Give the mailbox a name (letters, digits, . - _), without @.") }
        let password = c.form["password"] ?? ""
        if let why = passwordProblem(password) { return refuse(c, back: back, why) }
        let quota = c.form.text("quota")
        return change(c, back: back, done: "Mailbox \(address) added.") {
            _ = try admin.run("vadduser", (quota.isEmpty ? [] : ["-q", quota]) + ["--", address, password])
        }
    }

    func deleteMailboxPage(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (s, d) = sd else { return no! }
        guard let address = mailboxAddress(c, d), let (u, _) = try? admin.mailbox(address) else {
            return refuse(c, back: domainLink(d), "No such mailbox.")
        }
        let used = admin.usage(u)
        let body = """
        <section><h2>Delete \(escapeHTML(address))?</h2>
        <p>Its \(used.map { "<strong>\($0.count) message\($0.count == 1 ? "" : "s")</strong> (\(bytesText($0.bytes)))" } ?? "messages") and its settings go with it and cannot be recovered.</p>
        \(postForm("/domain/mailbox/delete", s, ["d": d.name.string, "u": u.name.string, "confirm": "yes"], #"<button type="submit" class="danger">Delete \#(escapeHTML(address))</button>"#))
        <p><a href="\(escapeHTML(domainLink(d)))">Cancel</a></p>
        </section>
        """
        return answer(.ok, page("Delete a mailbox", s, body))
    }

    func deleteMailbox(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        let back = domainLink(d)
        guard let address = mailboxAddress(c, d) else { return refuse(c, back: back, "No such mailbox.") }
        guard c.form.text("confirm") == "yes" else { return redirect("/domain/mailbox/delete?d=\(escapeQuery(d.name.string))&u=\(escapeQuery(c.value("u")))") }
        if address.hasPrefix("postmaster@") { return refuse(c, back: back, "The postmaster mailbox stays while the domain does.") }
        return change(c, back: back, done: "Mailbox \(address) deleted.") {
            _ = try admin.run("vdeluser", ["--", address])
        }
    }

    func mailboxPassword(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        guard let address = mailboxAddress(c, d) else { return refuse(c, back: domainLink(d), "No such mailbox.") }
        let back = "/domain/mailbox?d=\(escapeQuery(d.name.string))&u=\(escapeQuery(c.value("u")))"
        return setPassword(c, address, back: back)
    }

    /// vpasswd, after the two copies of the new password agree.
    func setPassword(_ c: Call, _ address: String, back: String) -> WebAnswer {
        let password = c.form["password"] ?? ""
        if let why = passwordProblem(password) { return refuse(c, back: back, why) }
        guard ConstantTime.equals(Array(password.utf8), Array((c.form["password2"] ?? "").utf8)) else {
            return refuse(c, back: back, "The two new passwords differ.")
        }
        return change(c, back: back, done: "Password of \(address) changed.") {
            _ = try admin.run("vpasswd", ["--", address, password])
        }
    }

    func mailboxQuota(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        guard let address = mailboxAddress(c, d) else { return refuse(c, back: domainLink(d), "No such mailbox.") }
        let back = "/domain/mailbox?d=\(escapeQuery(d.name.string))&u=\(escapeQuery(c.value("u")))"
        let q = c.form.text("quota")
        return change(c, back: back, done: "Quota of \(address) set.") {
            _ = try admin.run("vsetuserquota", ["--", address, q.isEmpty ? "NOQUOTA" : q])
        }
    }

    func mailboxForward(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        guard let address = mailboxAddress(c, d) else { return refuse(c, back: domainLink(d), "No such mailbox.") }
        let back = "/domain/mailbox?d=\(escapeQuery(d.name.string))&u=\(escapeQuery(c.value("u")))"
        let f = requestedForwarding(c)
        return change(c, back: back, done: f.targets.isEmpty ? "Forwarding of \(address) turned off." : "Forwarding of \(address) saved.") {
            try admin.setForwarding(address, f)
        }
    }

    func addAlias(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        let back = domainLink(d)
        let a = c.form.text("a").lowercased()
        guard !a.isEmpty, !a.contains("@") else { return refuse(c, back: back, "Give the alias's name without @.") }
        var target = c.form.text("target")
        if !target.isEmpty && !target.contains("@") { target += "@" + d.name.string }
        let address = a + "@" + d.name.string
        return change(c, back: back, done: "\(address) now goes to \(target).") {
            _ = try admin.run("valias", ["-i", target, "--", address])
        }
    }

    func deleteAlias(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        let a = c.form.text("a").lowercased()
        guard !a.isEmpty, !a.contains("@") else { return refuse(c, back: domainLink(d), "No such alias.") }
        return change(c, back: domainLink(d), done: "Alias \(a)@\(d.name.string) deleted.") {
            _ = try admin.run("valias", ["-d", "--", a + "@" + d.name.string])
        }
    }

    func setCatchAll(_ c: Call) -> WebAnswer {
        let (sd, no) = scoped(c)
        guard let (_, d) = sd else { return no! }
        let back = domainLink(d)
        let target: String?
        switch c.form.text("mode") {
        case "bounce": target = nil
        case "delete": target = "delete"
        case "forward":
            let t = c.form.text("target").lowercased()
            guard !t.isEmpty, t != "delete" else { return refuse(c, back: back, "Name the mailbox or address that gets the mail.") }
            target = t
        default: return refuse(c, back: back, "Choose what happens to the mail.")
        }
        return change(c, back: back, done: "Mail for addresses that do not exist is now \(target == nil ? "bounced" : target == "delete" ? "deleted" : "delivered to \(target!)").") {
            try admin.setCatchAll(d.name.string, target)
        }
    }
}
