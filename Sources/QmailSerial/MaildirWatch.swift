// maildirwatch (qmail's): shows the From and Subject of each new message
// in $MAILDIR on a VT100-like terminal, refreshed every 30 seconds.
// Runs as the mailbox owner; trusts nothing in the messages (every byte
// outside printable ASCII is shown as '?').
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum MaildirWatch {
    static let clear = "\u{1b}[;H\u{1b}[;J"

    /// The screen for one scan: one block per message in new/ and cur/
    /// without the seen flag, oldest first.
    public static func screen(maildir: String) -> String {
        var names: [(String, String)] = []
        for sub in ["new", "cur"] {
            for n in (try? Sys.listDirectory("\(maildir)/\(sub)")) ?? [] where !n.hasPrefix(".") {
                if sub == "cur", let i = n.firstRange(of: ":2,"), n[i.upperBound...].contains("S") { continue }
                names.append((n, "\(maildir)/\(sub)/\(n)"))
            }
        }
        var out = ""
        for (_, path) in names.sorted(by: { $0.0 < $1.0 }) {
            guard let data = (try? FileIO.read(path, limit: 64 << 10)) ?? nil else { continue }
            var from = "", subject = ""
            for line in MessageHeader.unfoldedLines(data) {
                let l = line.lowercasedASCII()
                if from.isEmpty && l.starts(with: Array("from:".utf8)) { from = printable(line) }
                if subject.isEmpty && l.starts(with: Array("subject:".utf8)) { subject = printable(line) }
            }
            out += (from.isEmpty ? "From: (none)" : from) + "\n"
            out += "  " + (subject.isEmpty ? "Subject: (none)" : subject) + "\n"
        }
        return out
    }

    static func printable(_ b: [UInt8]) -> String {
        String(decoding: b.prefix(200).map { ($0 >= 32 && $0 < 127) || $0 == Ascii.tab ? $0 : 63 }, as: UTF8.self)
    }

    public static func main(_ args: [String]) -> Int32 {
        guard let md = Sys.getenv("MAILDIR"), !md.isEmpty else {
            Sys.warn("maildirwatch: fatal: MAILDIR not set"); return QmailExit.temporary
        }
        guard Sys.isDirectory("\(md)/new") else {
            Sys.warn("maildirwatch: fatal: unable to read \(md)/new"); return QmailExit.temporary
        }
        let interval = UInt32(Sys.getenv("MAILDIRWATCH_INTERVAL").flatMap { UInt32($0) } ?? 30)
        while true {
            let s = clear + screen(maildir: md)
            if (try? Sys.writeAll(1, s)) == nil { return QmailExit.temporary }
            sleep(max(interval, 1))
        }
    }
}
