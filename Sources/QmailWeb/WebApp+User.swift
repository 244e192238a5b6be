// A mailbox's own page: its password, forwarding (with or without a copy
// kept), vacation message and spam settings. It always acts on the
// session's own address: no form field names the mailbox.
import QmailCore
import QmailFilter
import UserDirectory
import VHosting

extension WebApp {
    func userRoutes(_ r: Routes) {
        on(r, .get, "/me") { self.mePage($0) }
        on(r, .post, "/me/password") { self.mePassword($0) }
        on(r, .post, "/me/forward") { self.meForward($0) }
        on(r, .post, "/me/spam") { self.meSpam($0) }
        vacationRoutes(r)
    }

    /// The session when it has a mailbox of its own here.
    func own(_ c: Call) -> (Session?, WebAnswer?) {
        let (s, no) = need(c)
        guard let s else { return (nil, no) }
        return s.hasMailbox ? (s, nil) : (nil, forbidden(s, "This login has no mailbox managed here."))
    }

    func mePage(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        let flash = sessions.takeFlash(c.token)
        if let m = s.directoryMailbox { return answer(.ok, page("My mailbox", s, flash: flash, directoryPage(s, m))) }
        guard let (u, _) = try? admin.mailbox(s.address) else {
            return answer(.serviceUnavailable, page("My mailbox", s, flash: flash, #"<p class="error">Your mailbox cannot be read just now: try again later.</p>"#))
        }
        let used = admin.usage(u).map { "\(bytesText($0.bytes)) in \($0.count) message\($0.count == 1 ? "" : "s")" } ?? "unknown"
        let f = (try? admin.forwarding(s.address)) ?? Forwarding()
        let body = """
        <section><p>Your mailbox holds \(escapeHTML(used)); its quota is \(escapeHTML(quotaText(u.quota))).</p></section>
        <section><h2>Change my password</h2>
        \(postForm("/me/password", s, [:], """
        \(field("current", "Current password", type: "password", required: true, extra: #" autocomplete="current-password""#))
        \(field("password", "New password", type: "password", required: true, extra: #" autocomplete="new-password""#))
        \(field("password2", "New password again", type: "password", required: true, extra: #" autocomplete="new-password""#))
        <button type="submit">Change password</button>
        """))
        </section>
        \(forwardSection("/me/forward", s, [:], f))
        \(vacationSection(s))
        \(spamSection(s))
        """
        return answer(.ok, page("My mailbox", s, flash: flash, body))
    }

    /// The page of a mailbox an LDAP or MySQL directory keeps: the v*
    /// commands (and so this program) write only the file store, so the
    /// password and forwarding are shown as the directory's to change;
    /// the vacation message lives in the mailbox's own directory.
    func directoryPage(_ s: Session, _ m: DirectoryMailbox) -> String {
        let used = (try? MaildirSize.scan(m.maildir)).map { "\(bytesText($0.bytes)) in \($0.count) message\($0.count == 1 ? "" : "s")" } ?? "unknown"
        return """
        <section><p>Your mailbox holds \(escapeHTML(used)); its quota is kept in the \(m.directoryName).</p></section>
        <section><h2>Password and forwarding</h2>
        <p>\(escapeHTML(directoryReadOnly(m)))</p>
        </section>
        \(vacationSection(s))
        """
    }

    func directoryReadOnly(_ m: DirectoryMailbox) -> String {
        "Your password and forwarding are kept in the \(m.directoryName), which this server only reads: "
            + "ask your postmaster to change them there. Nothing about them can be changed on this page."
    }

    /// A change this page cannot make for a directory's mailbox, refused
    /// before anything is written (never to the file store instead).
    func refuseDirectoryChange(_ c: Call, _ s: Session) -> WebAnswer? {
        guard let m = s.directoryMailbox else { return nil }
        return refuse(c, back: "/me", directoryReadOnly(m))
    }

    func mePassword(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        if let r = refuseDirectoryChange(c, s) { return r }
        // The current password first, under the same limits as a login.
        switch login.check(login: s.address, password: c.form["current"] ?? "", remote: c.ip).0 {
        case .ok: return setPassword(c, s.address, back: "/me")
        case .rejected: return refuse(c, back: "/me", "Your current password was not right: nothing changed.")
        case .limited: return refuse(c, back: "/me", "Too many wrong passwords: wait a while and try again.")
        case .temporary: return refuse(c, back: "/me", "The password could not be checked just now: try again in a moment.")
        }
    }

    func meForward(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        if let r = refuseDirectoryChange(c, s) { return r }
        let f = requestedForwarding(c)
        return change(c, back: "/me", done: f.targets.isEmpty ? "Forwarding turned off: mail stays here." : "Forwarding saved.") {
            try admin.setForwarding(s.address, f)
        }
    }

    // MARK: spam settings (qmail-filter's per-mailbox policy, vfilterpolicy)

    /// The mailbox's filter policy; nil when it is not kept in the file
    /// store (LDAP, MySQL: vfilterpolicy-ldap/-mysql manage it there).
    func filterPolicy(_ s: Session) -> FilterPolicy.Judgement?? {
        guard (try? DirectoryChoice.remoteBackend(home: home)) == .some(nil), let (u, d) = try? admin.mailbox(s.address) else { return nil }
        let text = ((try? FileStore.loadFilterPolicies(d)) ?? []).first { $0.user == u.name }?.policy
        guard let t = text else { return .some(nil) }
        return .some(try? FilterPolicy.Judgement().applying(t))
    }

    func spamSection(_ s: Session) -> String {
        guard let policy = filterPolicy(s) else { return "" }
        let j = policy ?? FilterPolicy.Judgement()
        let reject = j.reject.map { $0.isInfinite ? "" : String($0) } ?? ""
        return """
        <section><h2>Spam filtering</h2>
        \(postForm("/me/spam", s, [:], """
        \(checkbox("spam", "Check my mail for spam", checked: j.spam))
        \(field("reject", "Refuse spam from this score on", value: reject, hint: "empty: the filter's own judgement"))
        \(checkbox("quarantine", "Keep refused spam in the quarantine instead", checked: j.quarantine))
        <button type="submit">Save spam settings</button>
        """))
        </section>
        """
    }

    func meSpam(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        guard filterPolicy(s) != nil else { return forbidden(s, "Spam settings are not kept here for this mailbox.") }
        var parts = ["spam=" + (c.form.text("spam") == "yes" ? "yes" : "no"),
                     "quarantine=" + (c.form.text("quarantine") == "yes" ? "yes" : "no")]
        let reject = c.form.text("reject")
        if !reject.isEmpty {
            guard let v = Double(reject), v.isFinite else { return refuse(c, back: "/me", "The score is a number, for example 8 or 6.5.") }
            parts.append("reject=\(v)")
        }
        return change(c, back: "/me", done: "Spam settings saved.") {
            _ = try admin.run("vfilterpolicy", ["--", s.address, parts.joined(separator: ",")])
        }
    }
}
