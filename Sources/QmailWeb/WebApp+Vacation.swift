// The vacation message of a mailbox's own page, through the same functions
// as vvacation (Admin.vacation/setVacation/disableVacation): the reply's
// subject and text, its first and last day (UTC), one reply per sender per
// so many days. Turning it off keeps the text for next time.
import QmailCore
import VDelivery
import VHosting

extension WebApp {
    func vacationRoutes(_ r: Routes) {
        on(r, .post, "/me/vacation") { self.meVacation($0) }
        on(r, .post, "/me/vacation/off") { self.meVacationOff($0) }
    }

    /// The session's own mailbox's vacation: in the file store's mailbox,
    /// or in the directory an LDAP or MySQL login's mailbox has there.
    func vacationBox(_ s: Session) throws -> VacationMailbox {
        guard let m = s.directoryMailbox else { return try admin.vacationMailbox(s.address) }
        return VacationMailbox(directory: m.directory, uid: m.uid, gid: m.gid, kind: .hosted)
    }

    func vacationSection(_ s: Session) -> String {
        guard let v = try? admin.vacation(in: vacationBox(s)) else {
            return #"<section><h2>Vacation message</h2><p class="error">Your vacation settings cannot be read just now.</p></section>"#
        }
        let now = Sys.now()
        let state = !v.enabled ? "Off." : v.isActive(at: now) ? "On: senders get the reply below."
            : v.lastDay.map { now >= $0.start + 86400 } == true ? "Over (its last day has passed)." : "Set, from \(v.firstDay.map { "\($0)" } ?? "now")."
        let subjectHint = #"empty: "Auto:" and the subject of the mail answered"#
        let off = v.enabled ? postForm("/me/vacation/off", s, [:], #"<button type="submit" class="danger">Turn the vacation message off</button>"#) : ""
        return """
        <section><h2>Vacation message</h2>
        <p>\(escapeHTML(state))</p>
        \(postForm("/me/vacation", s, [:], """
        \(field("subject", "Subject", value: v.subject, hint: subjectHint))
        <label for="f-body">Message</label>
        <textarea id="f-body" name="body" rows="5">\(escapeHTML(v.body))</textarea>
        \(field("first", "First day", type: "date", value: v.firstDay.map { "\($0)" } ?? "", hint: "empty: from now"))
        \(field("last", "Last day", type: "date", value: v.lastDay.map { "\($0)" } ?? "", hint: "empty: until you turn it off"))
        \(field("interval", "Days between two replies to one sender", type: "number", value: String(v.intervalDays), extra: #" min="1" max="\#(VacationSettings.maxIntervalDays)""#))
        <button type="submit">Save and turn on</button>
        """))
        \(off)
        </section>
        """
    }

    func meVacation(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        var v = (try? admin.vacation(in: vacationBox(s))) ?? VacationSettings()
        v.enabled = true
        v.subject = c.form.text("subject")
        // a textarea's CRLF line ends as LF (as Characters "\r\n" is one)
        v.body = String(String.UnicodeScalarView((c.form["body"] ?? "").unicodeScalars.filter { $0 != "\r" }))
        for (name, label) in [("first", "first"), ("last", "last")] {
            let t = c.form.text(name)
            var day: VacationDay? = nil
            if !t.isEmpty {
                guard let d = VacationDay(t) else { return refuse(c, back: "/me", "The \(label) day is a date, YYYY-MM-DD.") }
                day = d
            }
            if name == "first" { v.firstDay = day } else { v.lastDay = day }
        }
        guard let n = Decimal.parse(Array(c.form.text("interval").utf8)) else {
            return refuse(c, back: "/me", "The days between two replies are a whole number.")
        }
        v.intervalDays = n
        return change(c, back: "/me", done: "Vacation message saved and on.") {
            try admin.setVacation(in: vacationBox(s), v)
        }
    }

    func meVacationOff(_ c: Call) -> WebAnswer {
        let (session, no) = own(c)
        guard let s = session else { return no! }
        return change(c, back: "/me", done: "Vacation message off.") {
            try admin.disableVacation(in: vacationBox(s))
        }
    }
}
