// A message's header as fields: lines up to the first empty one, folded
// lines joined (RFC 5322 unfolding), CRs dropped. For programs that look
// at a few fields (maildirwatch, the vacation responder); nothing here
// decodes or rewrites.

public enum MessageHeader {
    /// Header lines with continuations unfolded, up to the empty line.
    public static func unfoldedLines(_ d: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for raw in d.split(separator: Ascii.lf, omittingEmptySubsequences: false) {
            var l = Array(raw)
            if l.last == Ascii.cr { l.removeLast() }
            if l.isEmpty { break }
            if (l.first == Ascii.space || l.first == Ascii.tab), !lines.isEmpty { lines[lines.count - 1] += [Ascii.space] + l.drop { $0 == Ascii.space || $0 == Ascii.tab } }
            else { lines.append(l) }
        }
        return lines
    }

    /// (lowercased name, value without surrounding blanks) of each field;
    /// a line without a colon is skipped.
    public static func fields(_ d: [UInt8]) -> [(name: [UInt8], value: [UInt8])] {
        unfoldedLines(d).compactMap { line in
            guard let colon = line.firstIndex(of: Ascii.colon) else { return nil }
            let blank: (UInt8) -> Bool = { $0 == Ascii.space || $0 == Ascii.tab }
            let name = Array(line[0..<colon]).trimmingTrailing(blank).lowercasedASCII()
            let value = Array(line[(colon + 1)...].drop(while: blank)).trimmingTrailing(blank)
            return (name, value)
        }
    }
}
