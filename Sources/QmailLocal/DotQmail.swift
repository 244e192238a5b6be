// dot-qmail(5): which .qmail file controls an address, what its lines
// mean, and the envelope sender used when forwarding. Pure functions over
// bytes, so the rules are testable without a home directory.
import QmailCore

public enum DotQmail {
    static let defaultWord: [UInt8] = Array("default".utf8)
    static let prefix: [UInt8] = Array(".qmail".utf8)

    /// The extension as it appears in file names: lowercased, and every
    /// '.' replaced by ':' so that an extension can never name "..".
    public static func safeExtension(_ ext: [UInt8]) -> [UInt8] {
        ext.map { c in c == Ascii.dot ? Ascii.colon : Ascii.lower(c) }
    }

    /// One file to try, and the value DEFAULT takes when it is used
    /// (nil when it is not a -default file).
    public struct Candidate: Equatable {
        public let name: [UInt8]
        public let defaultValue: [UInt8]?
    }

    /// The files qmail-local tries, in order, for `dash` and `ext`:
    /// .qmail-a-b, then .qmail-a-default, .qmail-default (each "-" boundary of
    /// the extension, longest first). With an empty extension only the first.
    public static func searchOrder(dash: [UInt8], ext: [UInt8]) -> [Candidate] {
        let safe = safeExtension(ext)
        var out: [Candidate] = []
        let exact = prefix + dash + safe
        var exactDefault: [UInt8]? = nil
        if safe.count >= 7, safe.hasSuffix(defaultWord) {
            exactDefault = Array(ext[(safe.count - 7)...])
        }
        out.append(Candidate(name: exact, defaultValue: exactDefault))
        var i = safe.count
        while i >= 0 {
            if i == 0 || safe[i - 1] == Ascii.minus {
                out.append(Candidate(name: prefix + dash + safe[0..<i] + defaultWord,
                                     defaultValue: Array(ext[i...])))
            }
            i -= 1
        }
        return out
    }

    /// The name qmail-local checks for an owner file: ".qmail" dash ext suffix.
    public static func ownerName(dash: [UInt8], ext: [UInt8], suffix: String) -> [UInt8] {
        prefix + dash + safeExtension(ext) + Array(suffix.utf8)
    }

    /// The forwarding envelope sender (NEWSENDER). `ownerExists` and
    /// `ownerDefaultExists` say whether .qmail-ext-owner and
    /// .qmail-ext-owner-default exist.
    public static func newSender(sender: [UInt8], local: [UInt8], host: [UInt8],
                                 ownerExists: Bool, ownerDefaultExists: Bool) -> [UInt8] {
        if sender.isEmpty || sender == Array("#@[]".utf8) || !ownerExists { return sender }
        if ownerDefaultExists {
            return local + Array("-owner-@".utf8) + host + Array("-@[]".utf8)
        }
        return local + Array("-owner@".utf8) + host
    }

    /// One delivery instruction.
    public enum Instruction: Equatable {
        case comment
        case program([UInt8])
        case forward([UInt8])
        case mbox([UInt8])
        case maildir([UInt8])
        /// "+list": the rest of the file may only forward.
        case forwardOnly
        /// A "+" line other than "+list": ignored, as qmail does.
        case ignored
        /// A blank line (an error only as the first line).
        case blank
    }

    /// Splits a .qmail file into instructions. Trailing spaces and tabs are
    /// removed; a last line without newline counts.
    public static func parse(_ data: [UInt8]) -> [Instruction] {
        var lines = data.split(separator: Ascii.lf, omittingEmptySubsequences: false).map(Array.init)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { raw in
            // Trailing blanks go first, then the line ends at a NUL, as the
            // C string qmail-local makes of it would: a NUL can never reach
            // a file name, a command or an envelope.
            let trimmed = raw.trimmingTrailing { $0 == Ascii.space || $0 == Ascii.tab }
            return instruction(Array(trimmed.prefix { $0 != 0 }))
        }
    }

    public static func instruction(_ line: [UInt8]) -> Instruction {
        guard let first = line.first else { return .blank }
        switch first {
        case Ascii.hash: return .comment
        case Ascii.dot, Ascii.slash:
            return line.last == Ascii.slash ? .maildir(line) : .mbox(line)
        case UInt8(ascii: "|"): return .program(Array(line.dropFirst()))
        case Ascii.plus: return line == Array("+list".utf8) ? .forwardOnly : .ignored
        case UInt8(ascii: "&"): return .forward(Array(line.dropFirst()))
        default: return .forward(line)
        }
    }

    /// EXT2, EXT3, EXT4: the extension after the first, second, third '-'.
    public static func extParts(_ ext: [UInt8]) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var x = ext[...]
        for _ in 0..<3 {
            if let d = x.firstIndex(of: Ascii.minus) { x = x[(d + 1)...] } else { x = x[x.endIndex...] }
            parts.append(Array(x))
        }
        return parts
    }

    /// HOST2, HOST3, HOST4: the domain without its last one, two, three
    /// dot-components (the whole domain when it has fewer dots).
    public static func hostParts(_ host: [UInt8]) -> [[UInt8]] {
        var parts: [[UInt8]] = []
        var end = host.count
        for _ in 0..<3 {
            // qmail's byte_rchr: the last '.' before end, or end itself when none.
            var i = end - 1
            while i >= 0 && host[i] != Ascii.dot { i -= 1 }
            if i >= 0 { end = i }
            parts.append(Array(host[0..<end]))
        }
        return parts
    }
}
