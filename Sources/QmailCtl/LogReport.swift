// qmail-report: reads qmail-send logs and prints qmailanalog-style reports
// (matchup, then zoverall, zddist, zsenders/zsuids, zrecipients, zfailures
// in spirit). Accepts raw qmail-send output, multilog lines
// (`@4000...` TAI64N labels), splogger/syslog lines (`... qmail: 1234.5678
// text`) and accustamp-style `1234.5678 text` lines, mixed. Trusts nothing
// in the log: unknown lines are counted and skipped.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct LogEvent {
    public var time: Double?
    public var text: Substring
}

public enum LogLine {
    /// Splits a log line into its timestamp (seconds since the epoch, when
    /// the line has one) and qmail-send's text.
    public static func parse(_ line: Substring) -> LogEvent {
        var s = line
        if s.first == "@", s.count >= 25 {
            let hex = s.dropFirst().prefix(24)
            if let secs = UInt64(hex.prefix(16), radix: 16), let nano = UInt64(hex.suffix(8), radix: 16) {
                // TAI64 label: 2^62 + seconds; TAI is 10 s ahead of UTC at 1970
                let t = Double(Int64(bitPattern: secs &- (UInt64(1) << 62))) - 10 + Double(nano) / 1e9
                s = s.dropFirst(25)
                while s.first == " " { s = s.dropFirst() }
                return LogEvent(time: t, text: s)
            }
        }
        if let (t, rest) = leadingStamp(s) {
            // journalctl -o short-unix: "1234.5678 host qmail[pid]: text"
            if !isSendText(rest), let r = rest.firstRange(of: ": "), isSendText(rest[r.upperBound...]) {
                return LogEvent(time: t, text: rest[r.upperBound...])
            }
            return LogEvent(time: t, text: rest)
        }
        // syslog: "Mon DD HH:MM:SS host tag[pid]: 1234.5678 text"
        if let r = s.firstRange(of: ": ") {
            let after = s[r.upperBound...]
            if let (t, rest) = leadingStamp(after) { return LogEvent(time: t, text: rest) }
            if isSendText(after) { return LogEvent(time: nil, text: after) }
        }
        return LogEvent(time: nil, text: s)
    }

    /// "1234567890.123456 rest" (splogger's and accustamp's stamp).
    static func leadingStamp(_ s: Substring) -> (Double, Substring)? {
        let digits = s.prefix { $0.isNumber || $0 == "." }
        guard digits.count >= 9, digits.first!.isNumber, let t = Double(digits) else { return nil }
        var rest = s.dropFirst(digits.count)
        guard rest.first == " " else { return nil }
        while rest.first == " " { rest = rest.dropFirst() }
        return (t, rest)
    }

    static func isSendText(_ s: Substring) -> Bool {
        for p in ["new msg ", "info msg ", "starting delivery ", "delivery ", "end msg ", "status: ", "bounce msg "] where s.hasPrefix(p) {
            return true
        }
        return false
    }
}

public final class LogReport {
    struct Msg { var birth: Double?; var bytes = 0; var sender = "?"; var recipients = 0 }
    struct Dlv { var msg: Int; var recipient: String; var channel: String; var start: Double? }
    public struct Count { public var messages = 0; public var bytes = 0; public var recipients = 0
        public var success = 0; public var failure = 0; public var deferral = 0; public var xdelay = 0.0 }

    var open: [Int: Msg] = [:]
    var deliveries: [Int: Dlv] = [:]

    // results
    public private(set) var messages = 0        // "end msg" seen for a message we saw begin
    public private(set) var bytes = 0
    public private(set) var recipientsTotal = 0 // deliveries started
    public private(set) var success = 0
    public private(set) var failure = 0
    public private(set) var deferral = 0
    public private(set) var local = Count()
    public private(set) var remote = Count()
    public private(set) var bounces = 0
    public private(set) var tripleBounces = 0
    public private(set) var unknownLines = 0
    public private(set) var lines = 0
    public private(set) var firstTime: Double?
    public private(set) var lastTime: Double?
    public private(set) var totalXdelay = 0.0   // sum over completed deliveries: birth -> done
    public private(set) var totalDdelay = 0.0   // sum over completed deliveries: start -> done
    public private(set) var delays: [Double] = []   // xdelay of each success/failure with a time
    public private(set) var senders: [String: Count] = [:]
    public private(set) var recipients: [String: Count] = [:]
    public private(set) var failures: [String: Int] = [:]
    public private(set) var deferrals: [String: Int] = [:]
    /// Messages whose last delivery attempt deferred: the recipient and report.
    public private(set) var lastDeferral: [Int: (recipient: String, report: String)] = [:]
    /// (time, messages in queue) after each change; (time, xdelay) per completed delivery.
    public private(set) var queueSeries: [(Double, Int)] = []
    public private(set) var delaySeries: [(Double, Double)] = []

    public init() {}

    func number(_ s: Substring) -> Int? { Int(s.prefix { $0.isNumber }) }

    public func add(line: Substring) {
        lines += 1
        let e = LogLine.parse(line)
        if let t = e.time {
            if firstTime == nil { firstTime = t }
            lastTime = t
        }
        let s = e.text
        let w = s.split(separator: " ", maxSplits: 6)
        if s.hasPrefix("new msg "), w.count >= 3, let id = number(w[2]) {
            open[id] = Msg(birth: e.time)
            queueSeries(e.time)
        } else if s.hasPrefix("info msg "), w.count >= 7, let id = number(w[2]) {
            // info msg N: bytes B from <S> qp P uid U
            var m = open[id] ?? Msg(birth: nil)
            m.bytes = Int(w[4]) ?? 0
            var sender = String(w[6])
            if let close = sender.firstIndex(of: ">") { sender = String(sender[..<close]) }
            if sender.hasPrefix("<") { sender.removeFirst() }
            m.sender = sender
            open[id] = m
        } else if s.hasPrefix("starting delivery "), w.count >= 7, let d = number(w[2]), let id = number(w[4]) {
            // starting delivery D: msg N to local|remote R
            let rest = w[6].split(separator: " ", maxSplits: 1)
            let recip = rest.count > 1 ? String(rest[1]) : ""
            deliveries[d] = Dlv(msg: id, recipient: recip, channel: String(rest.first ?? ""), start: e.time)
        } else if s.hasPrefix("delivery "), w.count >= 3, let d = number(w[1]) {
            // delivery D: success|failure|deferral: report
            let outcome = w[2].hasSuffix(":") ? w[2].dropLast() : w[2]
            let report = s.split(separator: " ", maxSplits: 3).dropFirst(3).first.map(String.init) ?? ""
            guard let dl = deliveries.removeValue(forKey: d) else { unknownLines += 1; return }
            finish(dl, outcome: outcome, report: report, time: e.time)
        } else if s.hasPrefix("end msg "), w.count >= 3, let id = number(w[2]) {
            lastDeferral[id] = nil
            if let m = open.removeValue(forKey: id) {
                messages += 1
                bytes += m.bytes
                senders[m.sender, default: Count()].messages += 1
                senders[m.sender, default: Count()].bytes += m.bytes
                senders[m.sender, default: Count()].recipients += m.recipients
            }
            queueSeries(e.time)
        } else if s.hasPrefix("bounce msg ") {
            bounces += 1
        } else if s.hasPrefix("triple bounce") {
            tripleBounces += 1
        } else if s.hasPrefix("status: ") || s.hasPrefix("warning: ") || s.hasPrefix("alert: ") {
            // not counted
        } else {
            unknownLines += 1
        }
    }

    func queueSeries(_ t: Double?) {
        if let t = t { queueSeries.append((t, open.count)) }
    }

    func finish(_ d: Dlv, outcome: Substring, report: String, time: Double?) {
        var c = d.channel == "remote" ? remote : local
        var r = recipients[d.recipient, default: Count()]
        recipientsTotal += 1
        switch outcome {
        case "success": success += 1; c.success += 1; r.success += 1
        case "failure": failure += 1; c.failure += 1; r.failure += 1; failures[reason(report), default: 0] += 1
        default: deferral += 1; c.deferral += 1; r.deferral += 1; deferrals[reason(report), default: 0] += 1
        }
        if outcome == "deferral" {
            lastDeferral[d.msg] = (d.recipient, report)
        } else {
            if lastDeferral[d.msg]?.recipient == d.recipient { lastDeferral[d.msg] = nil }
            open[d.msg]?.recipients += 1
        }
        if outcome != "deferral", let t = time {
            if let b = open[d.msg]?.birth {
                let x = max(0, t - b)
                totalXdelay += x; c.xdelay += x; r.xdelay += x
                delays.append(x)
                delaySeries.append((t, x))
            }
            if let st = d.start { totalDdelay += max(0, t - st) }
        }
        if d.channel == "remote" { remote = c } else { local = c }
        recipients[d.recipient] = r
    }

    /// The first sentence of a report, without host-specific detail.
    func reason(_ r: String) -> String {
        let cut = r.prefix { $0 != "/" }
        return String(cut.prefix(80))
    }

    // MARK: output

    static func fmt(_ x: Double, _ places: Int = 2) -> String {
        if places == 0 { return String(Int(x.rounded())) }
        var m = 1.0
        for _ in 0..<places { m *= 10 }
        let v = (x * m).rounded() / m
        var s = String(v)
        if let dot = s.firstIndex(of: ".") {
            let frac = s[s.index(after: dot)...].count
            if frac < places { s += String(repeating: "0", count: places - frac) }
        } else if places > 0 { s += "." + String(repeating: "0", count: places) }
        return s
    }

    /// Delay buckets of zddist: up to 1s, 2s, 4s, ... as powers of two, then the rest.
    public func delayDistribution() -> [(limit: Double, count: Int)] {
        var limits: [Double] = []
        var l = 1.0
        while l <= 65536 { limits.append(l); l *= 4 }
        var counts = [Int](repeating: 0, count: limits.count + 1)
        for d in delays {
            if let i = limits.firstIndex(where: { d <= $0 }) { counts[i] += 1 } else { counts[limits.count] += 1 }
        }
        return limits.enumerated().map { ($0.element, counts[$0.offset]) } + [(Double.infinity, counts[limits.count])]
    }

    public func render(top: Int) -> String {
        var o = ""
        func line(_ s: String) { o += s + "\n" }
        let f = { (x: Double, p: Int) in LogReport.fmt(x, p) }
        line("Basic statistics")
        line("")
        if let a = firstTime, let b = lastTime {
            line("qtime    \(f(b - a, 0)) seconds of log, \(lines) lines")
        } else {
            line("lines    \(lines) (no timestamps: delays not known)")
        }
        line("done     \(messages) messages, \(bytes) bytes; average \(messages == 0 ? "0" : String(bytes / messages)) bytes per message")
        line("recips   \(recipientsTotal) delivery attempts: \(success) success, \(failure) failure, \(deferral) deferral")
        line("local    \(local.success) success, \(local.failure) failure, \(local.deferral) deferral")
        line("remote   \(remote.success) success, \(remote.failure) failure, \(remote.deferral) deferral")
        line("bounces  \(bounces) (\(tripleBounces) triple bounces discarded)")
        let done = success + failure
        if !delays.isEmpty {
            line("xdelay   \(f(totalXdelay, 2)) seconds total, \(f(totalXdelay / Double(delays.count), 2)) average (queue entry to delivery)")
            line("ddelay   \(f(totalDdelay, 2)) seconds total, \(f(totalDdelay / Double(max(done, 1)), 2)) average (delivery attempt)")
        }
        if unknownLines > 0 { line("skipped  \(unknownLines) lines not from qmail-send") }
        if !open.isEmpty { line("open     \(open.count) messages begun but not ended in this log") }
        line("")
        line("Delay distribution (successes and failures, queue entry to delivery)")
        line("")
        line("    <= seconds   count   pct   cumulative")
        var cum = 0
        for (lim, n) in delayDistribution() {
            cum += n
            let pct = delays.isEmpty ? 0 : Double(n) * 100 / Double(delays.count)
            let cpct = delays.isEmpty ? 0 : Double(cum) * 100 / Double(delays.count)
            let l = lim.isInfinite ? "more" : String(Int(lim))
            line("\(l.leftPad(12)) \(String(n).leftPad(7)) \(f(pct, 1).leftPad(6)) \(f(cpct, 1).leftPad(8))")
        }
        line("")
        line("Top senders (messages, bytes, recipients)")
        line("")
        for (s, c) in senders.sorted(by: { ($0.value.messages, $0.value.bytes, $1.key) > ($1.value.messages, $1.value.bytes, $0.key) }).prefix(top) {
            line("\(String(c.messages).leftPad(7)) \(String(c.bytes).leftPad(10)) \(String(c.recipients).leftPad(6))  <\(s)>")
        }
        line("")
        line("Top recipients (success, failure, deferral, xdelay)")
        line("")
        for (r, c) in recipients.sorted(by: { ($0.value.success + $0.value.failure, $1.key) > ($1.value.success + $1.value.failure, $0.key) }).prefix(top) {
            line("\(String(c.success).leftPad(7)) \(String(c.failure).leftPad(7)) \(String(c.deferral).leftPad(7)) \(f(c.xdelay, 2).leftPad(10))  \(r)")
        }
        if !failures.isEmpty || !deferrals.isEmpty {
            line("")
            line("Reasons for failure and deferral")
            line("")
            for (r, n) in failures.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(top) { line("\(String(n).leftPad(7))  failure: \(r)") }
            for (r, n) in deferrals.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(top) { line("\(String(n).leftPad(7))  deferral: \(r)") }
        }
        return o
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
