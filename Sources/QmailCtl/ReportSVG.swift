// The picture of a qmail-report run: delivery delay (dots, log scale) and
// messages in the queue (line) over time, as a self-contained SVG file.
import QmailCore

enum ReportSVG {
    static let width = 900.0, height = 520.0, left = 70.0, right = 70.0, top = 40.0, bottom = 60.0

    static func esc(_ s: String) -> String {
        s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }

    static func clock(_ t: Double) -> String {
        let s = Int(t.rounded()) % 86400
        let h = s / 3600, m = (s / 60) % 60
        return (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
    }

    static func render(_ r: LogReport) -> String {
        let pw = width - left - right, ph = height - top - bottom
        let times = r.queueSeries.map { $0.0 } + r.delaySeries.map { $0.0 }
        var o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">qmail-send: delivery delay and queue size (\(r.messages) messages, \(r.success) successes, \(r.failure) failures, \(r.deferral) deferrals)</text>\n"
        guard let t0 = times.min(), let t1 = times.max() else {
            o += "<text x=\"\(Int(width / 2))\" y=\"\(Int(height / 2))\" text-anchor=\"middle\">no timestamped deliveries in this log</text>\n</svg>\n"
            return o
        }
        let span = max(t1 - t0, 1)
        func x(_ t: Double) -> Double { left + (t - t0) / span * pw }
        // delay axis: log10 from 0.1 s to the largest delay
        let maxDelay = max(r.delaySeries.map { $0.1 }.max() ?? 1, 1)
        let lo = -1.0, hi = max(log10v(maxDelay), 0) + 0.2
        func yd(_ d: Double) -> Double { top + ph - (log10v(max(d, 0.1)) - lo) / (hi - lo) * ph }
        let maxQ = max(r.queueSeries.map { $0.1 }.max() ?? 1, 1)
        func yq(_ n: Int) -> Double { top + ph - Double(n) / Double(maxQ) * ph }
        let f = { (v: Double) in LogReport.fmt(v, 1) }
        // frame and axes
        o += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"#888\"/>\n"
        var p = 0.1
        while log10v(p) <= hi {
            let y = yd(p)
            o += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y))\" y2=\"\(f(y))\" stroke=\"#eee\"/>"
            o += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\" fill=\"#1f5fa8\">\(p < 1 ? "0.1" : String(Int(p)))s</text>\n"
            p *= 10
        }
        for i in 0...4 {
            let n = Int((Double(maxQ) * Double(i) / 4).rounded())
            o += "<text x=\"\(f(left + pw + 6))\" y=\"\(f(yq(n) + 4))\" fill=\"#c0392b\">\(n)</text>\n"
        }
        for i in 0...5 {
            let t = t0 + span * Double(i) / 5
            o += "<text x=\"\(f(x(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(clock(t))</text>\n"
        }
        o += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\">time (UTC), \(f(span)) seconds of log</text>\n"
        o += "<text x=\"16\" y=\"\(f(top + ph / 2))\" transform=\"rotate(-90 16 \(f(top + ph / 2)))\" text-anchor=\"middle\" fill=\"#1f5fa8\">delivery delay (log scale)</text>\n"
        o += "<text x=\"\(f(width - 14))\" y=\"\(f(top + ph / 2))\" transform=\"rotate(90 \(f(width - 14)) \(f(top + ph / 2)))\" text-anchor=\"middle\" fill=\"#c0392b\">messages in queue</text>\n"
        // queue size as a step line: the largest size in each pixel column
        if !r.queueSeries.isEmpty {
            var columns: [(Double, Int)] = []
            for (t, n) in r.queueSeries {
                let col = x(t).rounded()
                if let last = columns.last, last.0 == col {
                    columns[columns.count - 1].1 = max(last.1, n)
                } else {
                    columns.append((col, n))
                }
            }
            var pts = ""
            var prevY = yq(0)
            for (cx, n) in columns {
                pts += "\(f(cx)),\(f(prevY)) \(f(cx)),\(f(yq(n))) "
                prevY = yq(n)
            }
            o += "<polyline fill=\"none\" stroke=\"#c0392b\" stroke-width=\"1.5\" points=\"\(pts)\"/>\n"
        }
        // delays as dots (at most 20000 drawn)
        let step = max(1, r.delaySeries.count / 20000)
        var i = 0
        while i < r.delaySeries.count {
            let (t, d) = r.delaySeries[i]
            o += "<circle cx=\"\(f(x(t)))\" cy=\"\(f(yd(d)))\" r=\"2\" fill=\"#1f5fa8\" fill-opacity=\"0.6\"/>\n"
            i += step
        }
        o += "</svg>\n"
        return o
    }

    /// log10 without Foundation.
    static func log10v(_ x: Double) -> Double { Glibc.log10(x) }
}

#if canImport(Glibc)
import Glibc
#endif
