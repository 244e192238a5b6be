// Progress on standard error for long jobs (qmail-newu, newaliases on
// large inputs). Silent unless stderr is a terminal and the job is large,
// so scripts and logs see exactly the old output.
#if canImport(Glibc)
import Glibc
#endif

public struct Progress {
    let label: String
    let unit: String
    let total: Int?
    let enabled: Bool
    var lastShown: Int = 0
    var lastTime: Int = 0

    /// `size` is the job's size in the unit `large` is measured in.
    public init(_ label: String, unit: String, total: Int?, size: Int, large: Int) {
        self.label = label
        self.unit = unit
        self.total = total
        enabled = size >= large && isatty(2) == 1
    }

    /// Shows `done` at most a few times a second.
    public mutating func step(_ done: Int) {
        guard enabled, done - lastShown >= 1000 else { return }
        lastShown = done
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let ms = Int(ts.tv_sec) * 1000 + Int(ts.tv_nsec) / 1_000_000
        if ms - lastTime < 200 { return }
        lastTime = ms
        show(done, final: false)
    }

    public func finish(_ done: Int) {
        if enabled { show(done, final: true) }
    }

    func show(_ done: Int, final: Bool) {
        var s = "\r\(label): \(done)"
        if let t = total, t > 0 { s += "/\(t) \(unit) (\(done * 100 / t)%)" } else { s += " \(unit)" }
        s += final ? " done\n" : "   "
        _ = try? Sys.writeAll(2, s)
    }
}
