// qmail-report [--top N] [--svg FILE] [logfile ...]: reads qmail-send logs
// (standard input without files) and prints the report. Exit 0, 100 on
// usage errors, 111 when a file cannot be read or written.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum ReportCommand {
    public static let usage = "usage: qmail-report [--top N] [--svg FILE] [logfile ...]"

    public static func main(_ args: [String]) -> Int32 {
        var argv = Array(args.dropFirst())
        var top = 20
        var svg: String? = nil
        var files: [String] = []
        while !argv.isEmpty {
            let a = argv.removeFirst()
            if a == "--top" || a == "-n", let v = argv.first, let n = Int(v), n > 0 { top = n; argv.removeFirst() }
            else if a == "--svg", let v = argv.first { svg = v; argv.removeFirst() }
            else if a == "--" { files += argv; argv = [] }
            else if a.hasPrefix("-") && a != "-" { Sys.warn(usage); return QmailExit.permanent }
            else { files.append(a) }
        }
        let report = LogReport()
        if files.isEmpty { files = ["-"] }
        for f in files {
            let fd: Int32
            if f == "-" { fd = 0 } else {
                guard let o = try? Sys.open(f, O_RDONLY) else {
                    Sys.warn("qmail-report: cannot open \(f): \(Sys.strerror(errno))"); return QmailExit.temporary
                }
                fd = o
            }
            let r = ByteReader(fd: fd, capacity: 1 << 16)
            do {
                // overlong lines are cut: no qmail-send line is near 64 KiB
                while let (b, _) = try r.line(limit: 65536) {
                    var bytes = b
                    if bytes.last == Ascii.lf { bytes.removeLast() }
                    report.add(line: Substring(String(decoding: bytes, as: UTF8.self)))
                }
            } catch {
                Sys.warn("qmail-report: cannot read \(f): \(error)"); return QmailExit.temporary
            }
            if fd != 0 { Sys.close(fd) }
        }
        do {
            try Sys.writeAll(1, report.render(top: top))
            if let s = svg {
                try FileIO.writeAtomic(s, Array(ReportSVG.render(report).utf8), mode: 0o644)
            }
        } catch {
            Sys.warn("qmail-report: \(error)"); return QmailExit.temporary
        }
        return 0
    }
}
