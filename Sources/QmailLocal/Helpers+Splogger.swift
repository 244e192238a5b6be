// splogger: sends each line of its input to syslog, stamped.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension Helpers {
    /// splogger's line handling, apart from syslog so tests reach it:
    /// non-printable bytes become '?'; a line is sent in pieces of at most
    /// 799 bytes, the first as "STAMP text", the rest as "STAMP+text"; the
    /// priority is warning for "warning:", alert for "alert:", else info.
    public struct SploggerLines {
        var buf: [UInt8] = []
        var continuing = false
        var priority: Int32 = LOG_INFO
        var stamp = ""
        let makeStamp: () -> String
        let emit: (Int32, String) -> Void

        public init(stamp: @escaping () -> String, emit: @escaping (Int32, String) -> Void) {
            makeStamp = stamp
            self.emit = emit
        }

        mutating func flush() {
            guard !buf.isEmpty else { return }
            if continuing {
                emit(priority, stamp + "+" + buf.string)
            } else {
                stamp = makeStamp()
                priority = LOG_INFO
                if buf.hasPrefix(Array("warning:".utf8)) { priority = LOG_WARNING }
                if buf.hasPrefix(Array("alert:".utf8)) { priority = LOG_ALERT }
                emit(priority, stamp + " " + buf.string)
                continuing = true
            }
            buf.removeAll(keepingCapacity: true)
        }

        /// End of input: a last line without newline is still logged
        /// (qmail's splogger drops it).
        public mutating func finish() { flush() }

        public mutating func feed(_ c: UInt8) {
            if c == Ascii.lf { flush(); continuing = false; return }
            if buf.count == 799 { flush() }
            buf.append(c < 32 || c > 126 ? UInt8(ascii: "?") : c)
        }
    }

    /// "seconds.microseconds", as splogger stamps each line.
    static func sploggerStamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        let us = String(Int(tv.tv_usec))
        return "\(tv.tv_sec)." + String(repeating: "0", count: max(0, 6 - us.count)) + us
    }

    public static func splogger(_ argv: [[UInt8]]) -> Int32 {
        let tag = argv.count >= 2 ? argv[1].string : "splogger"
        var facility = LOG_MAIL
        if argv.count >= 3 { facility = Int32(Decimal.scanPrefix(argv[2]) ?? 0) << 3 }
        // openlog keeps the pointer: the tag must outlive the program.
        openlog(strdup(tag), 0, facility)
        var lines = SploggerLines(stamp: sploggerStamp, emit: sysLog)
        let r = ByteReader(fd: 0, capacity: 8192)
        while let c = try? r.byte() { lines.feed(c) }
        lines.finish()
        return 0
    }

    static func sysLog(_ priority: Int32, _ s: String) {
        s.withCString { msg in
            "%s".withCString { fmt in
                withVaList([OpaquePointer(msg)]) { vsyslog(priority, fmt, $0) }
            }
        }
    }
}
