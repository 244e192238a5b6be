// The filter's decision for one message: scan it with clamd and the spam
// engine that control names, and say whether it goes on to the queue (with
// which headers added) or is refused (with which reply). Pure of I/O except
// the scanners' sockets, so the program around it only moves bytes.
import QmailCore

/// What control/ says, read afresh for each message.
public struct FilterSettings {
    public var clamd: Clamd?
    public var spam: SpamEngine?
    /// Seconds for each scanner's whole conversation (control/filtertimeout).
    public var timeout = 30
    public var policy = FilterPolicy()
    /// A recipient's own policy text from the user directory (nil: none);
    /// throws when the directory cannot say now.
    public var mailboxPolicy: ((_ recipient: [UInt8]) throws -> [UInt8]?)? = nil

    public init() {}

    /// Each recipient's judgement: the site's, its domain's, its own.
    public func judgements(for recipients: [[UInt8]]) throws -> [FilterPolicy.Judgement] {
        if recipients.isEmpty { return [policy.site] }
        return try recipients.map { r in
            let j = policy.judgement(for: r)
            guard let own = try mailboxPolicy?(r) else { return j }
            return try j.applying(own)
        }
    }

    /// Reads control/clamd, control/spamd, control/filtertimeout and
    /// control/filter. Throws when one is unreadable or malformed.
    public static func load(_ control: Control) throws -> FilterSettings {
        var s = FilterSettings()
        if let line = try control.line("clamd"), !line.isEmpty {
            guard let a = ScannerAddress(line.string) else { throw ScanError("bad control/clamd") }
            s.clamd = Clamd(address: a)
        }
        if let line = try control.line("spamd"), !line.isEmpty {
            guard let e = SpamEngine(line.string) else { throw ScanError("bad control/spamd") }
            s.spam = e
        }
        s.timeout = max(1, try control.number("filtertimeout", default: 30))
        if let data = try control.raw("filter") {
            do { s.policy = try FilterPolicy.parse(data) } catch { throw ScanError("bad control/filter") }
        }
        return s
    }
}

/// The facts about one message the filter judges.
public struct FilterMessage {
    public var bytes: [UInt8]
    public var sender: [UInt8]
    public var recipients: [[UInt8]]
    public var authUser: String?
    public var remoteIP: String?

    public init(bytes: [UInt8], sender: [UInt8], recipients: [[UInt8]], authUser: String?, remoteIP: String?) {
        self.bytes = bytes
        self.sender = sender
        self.recipients = recipients
        self.authUser = authUser
        self.remoteIP = remoteIP
    }
}

public enum FilterVerdict: Equatable {
    /// Queue it for the recipients not in `quarantine`, after `headers`
    /// (and without any X-Spam headers it came with when
    /// `stripSpamHeaders`); keep it in the quarantine for those in
    /// `quarantine` (`reason` saying why).
    case pass(headers: [UInt8], stripSpamHeaders: Bool, quarantine: [[UInt8]] = [], reason: String = "")
    /// Refuse it: "D" or "Z", then the SMTP reply (qmail-queue-custom-error's form).
    case refuse(reason: String)
}

public enum Filter {
    /// What one recipient's policy makes of the message.
    enum Outcome: Equatable { case deliver, quarantine, refuse }

    /// Judges `m`; `log` gets one line saying what was found.
    public static func judge(_ m: FilterMessage, _ s: FilterSettings, log: inout String) -> FilterVerdict {
        let each: [FilterPolicy.Judgement]
        do { each = try s.judgements(for: m.recipients) } catch {
            log = "unable to read recipients' filter policy: \(error)"
            return .refuse(reason: "Z451 4.3.0 unable to read the recipients' filter policy")
        }
        var outcome = [Outcome](repeating: .deliver, count: each.count)
        var why: [String] = []
        var refusal = ""
        var headers = ""
        var notes: [String] = []
        if each.contains(where: { $0.virus }), let clamd = s.clamd {
            do {
                if let virus = try clamd.scan(m.bytes, deadline: deadline(s)) {
                    for i in each.indices where each[i].virus { outcome[i] = each[i].quarantine ? .quarantine : .refuse }
                    why.append("virus \(virus)")
                    refusal = "D554 5.7.1 virus \(virus) found, message refused"
                    notes.append("virus \(virus) found")
                } else {
                    notes.append("clean")
                }
            } catch {
                if let refusal = scannerFailed("virus", "viruses", error, s.policy.virusFailure, &log, &headers, &notes) {
                    return refusal
                }
            }
        }
        let skipAuth = s.policy.skipAuthenticated && !(m.authUser ?? "").isEmpty
        var strip = false
        let spamWanted = each.indices.filter { each[$0].spam && outcome[$0] == .deliver }
        if !spamWanted.isEmpty, let engine = s.spam, !skipAuth {
            var ctx = SpamContext()
            ctx.sender = m.sender
            ctx.recipients = m.recipients
            ctx.remoteIP = m.remoteIP
            ctx.authUser = m.authUser
            do {
                let r = try engine.check(m.bytes, context: ctx, deadline: deadline(s))
                let summary = "\(engine.name) score \(fmt(r.score))/\(fmt(r.required))" + (r.action.map { " action \($0)" } ?? "")
                let actions = spamWanted.map { (i: $0, action: spamAction(r, each[$0])) }
                if actions.contains(where: { $0.action == .soft }) {
                    log = summary + ", deferred"
                    return .refuse(reason: "Z451 4.7.1 message deferred by the spam filter, try again later")
                }
                var spam = false
                for (i, action) in actions where action == .reject {
                    outcome[i] = each[i].quarantine ? .quarantine : .refuse
                    spam = true
                }
                if spam {
                    why.append("spam score \(fmt(r.score))")
                    if refusal.isEmpty { refusal = "D550 5.7.1 message refused as spam (score \(fmt(r.score)))" }
                }
                if actions.contains(where: { $0.action == .tag && outcome[$0.i] == .deliver }) {
                    headers += spamHeaders(r, engine: engine)
                    strip = true
                    notes.append(summary + ", tagged")
                } else {
                    notes.append(summary + (spam ? ", spam" : ""))
                }
            } catch {
                if let refusal = scannerFailed("spam", "spam", error, s.policy.spamFailure, &log, &headers, &notes) {
                    return refusal
                }
            }
        } else if skipAuth && !spamWanted.isEmpty && s.spam != nil {
            notes.append("spam scan skipped for authenticated sender")
        }
        log = notes.isEmpty ? "not scanned" : notes.joined(separator: ", ")
        // One reply for all: refused only when refused for every recipient;
        // otherwise each refusing or quarantining recipient's copy is kept
        // in the quarantine, and the rest are queued.
        if outcome.allSatisfy({ $0 == .refuse }) && !refusal.isEmpty {
            log += ", refused"
            return .refuse(reason: refusal)
        }
        let held = m.recipients.indices.filter { outcome[$0] != .deliver }.map { m.recipients[$0] }
        if !held.isEmpty { log += ", quarantined for \(held.count) of \(m.recipients.count) recipient(s)" }
        return .pass(headers: Array(headers.utf8), stripSpamHeaders: strip, quarantine: held,
                     reason: why.joined(separator: ", "))
    }

    /// A scanner gave no verdict: 451 by default, or (where the policy
    /// says accept) the message goes on with a header saying so.
    static func scannerFailed(_ kind: String, _ what: String, _ error: Error, _ mode: FilterPolicy.FailureMode,
                              _ log: inout String, _ headers: inout String, _ notes: inout [String]) -> FilterVerdict? {
        log = "\(kind) scan failed: \(error)"
        guard mode == .accept else {
            return .refuse(reason: "Z451 4.3.0 \(kind) scanner unavailable, try again later")
        }
        headers += "X-Qmail-Filter: not scanned for \(what) (scanner unavailable)\n"
        notes.append("\(kind) scan failed (\(error)), accepted unscanned")
        return nil
    }

    static func deadline(_ s: FilterSettings) -> Int { ScannerSocket.nowMillis() + s.timeout * 1000 }

    enum SpamAction { case none, tag, soft, reject }

    static func spamAction(_ r: SpamScore, _ j: FilterPolicy.Judgement) -> SpamAction {
        if let level = j.reject {
            if r.score >= level { return .reject }
        } else if let action = r.action {
            if action == "reject" { return .reject }
        } else if r.score >= 10 {
            return .reject
        }
        if r.action == "soft reject" || r.action == "greylist" { return .soft }
        if let tag = j.tag, r.score < tag { return .none }
        return .tag
    }

    /// SpamAssassin's header names for either engine, so that users' mail
    /// rules need not know which one runs.
    static func spamHeaders(_ r: SpamScore, engine: SpamEngine) -> String {
        // rspamd's actions say spam before its score reaches required_score.
        let spam = r.action.map { $0 != "no action" && $0 != "greylist" } ?? (r.score >= r.required)
        var h = "X-Spam-Flag: \(spam ? "YES" : "NO")\n"
        h += "X-Spam-Score: \(fmt(r.score))\n"
        var status = "X-Spam-Status: \(spam ? "Yes" : "No"), score=\(fmt(r.score)) required=\(fmt(r.required))"
        if let a = r.action { status += " action=\"\(a)\"" }
        status += " engine=\(engine.name)"
        // Rule names, folded into lines of about 78 characters.
        let names = r.symbols.prefix(100).map { sym in
            String(sym.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") }.prefix(64))
        }.filter { !$0.isEmpty }
        if !names.isEmpty {
            status += " tests="
            var width = status.count
            for (i, name) in names.enumerated() {
                let piece = name + (i + 1 < names.count ? "," : "")
                if width + piece.count > 78 && i > 0 {
                    status += "\n\t"
                    width = 8
                }
                status += piece
                width += piece.count
            }
        }
        return h + status + "\n"
    }

    /// One decimal, as spamc prints scores.
    static func fmt(_ d: Double) -> String {
        guard d.isFinite else { return "0.0" }
        let tenths = Int((d * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        return "\(sign)\(abs(tenths) / 10).\(abs(tenths) % 10)"
    }

    /// `message` without the X-Spam-* header fields (and their
    /// continuation lines) of its header, so a sender cannot forge our verdict.
    public static func strippingSpamHeaders(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count)
        var i = 0
        var dropping = false
        while i < message.count {
            let end = message[i...].firstIndex(of: 10).map { $0 + 1 } ?? message.count
            let line = message[i..<end]
            if line.first == 10 || (line.first == 13 && line.dropFirst().first == 10) {
                out += message[i...]   // end of header: the rest as is
                return out
            }
            if line.first == 32 || line.first == 9 {
                if !dropping { out += line }
            } else {
                dropping = line.count >= 7 && line.prefix(7).map(Ascii.lower) == Array("x-spam-".utf8)
                if !dropping { out += line }
            }
            i = end
        }
        return out
    }
}
