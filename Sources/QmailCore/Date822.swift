// Dates in mail headers. qmail writes "21 Nov 2026 05:50:12 -0000" (UTC, no
// weekday) in Received and Date fields; RFC 5322 form with a weekday and the
// local offset is available for tools that want it.
#if canImport(Glibc)
import Glibc
#endif

public enum Date822 {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]

    private static func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// qmail's date822fmt: "21 Nov 2026 05:50:12 -0000", UTC, no newline.
    public static func qmail(_ t: Int) -> String {
        var tt = time_t(t)
        var tm = Glibc.tm()
        gmtime_r(&tt, &tm)
        return "\(tm.tm_mday) \(months[Int(tm.tm_mon)]) \(Int(tm.tm_year) + 1900) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) -0000"
    }

    /// RFC 5322: "Sat, 21 Nov 2026 06:50:12 +0100" in local time.
    public static func rfc5322(_ t: Int) -> String {
        var tt = time_t(t)
        var tm = Glibc.tm()
        localtime_r(&tt, &tm)
        let off = Int(tm.tm_gmtoff) / 60
        let sign = off < 0 ? "-" : "+"
        let a = abs(off)
        let hh = a / 60, mm = a % 60
        let zone = sign + (hh < 10 ? "0\(hh)" : "\(hh)") + (mm < 10 ? "0\(mm)" : "\(mm)")
        return "\(days[Int(tm.tm_wday)]), \(tm.tm_mday) \(months[Int(tm.tm_mon)]) \(Int(tm.tm_year) + 1900) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) \(zone)"
    }
}
