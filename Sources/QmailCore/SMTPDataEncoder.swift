// The one way a stored message becomes the text of an SMTP DATA command
// (qmail-remote, maildirsmtp). The queue holds whatever its entrances
// were given (qmail-smtpd keeps a bare CR, qmail-inject and QMQP/QMTP keep
// every byte), and a receiver may end DATA on a lenient sequence such as
// <CR>.<CR>, <LF>.<LF>, <CR>.<LF>, <LF>.<CR><LF> or one with a NUL it
// ignores (SMTP smuggling: the rest would become a second message from
// us). So the wire text keeps one invariant whatever the input:
//
//   every CR is followed by LF, every LF follows a CR, no NUL is sent,
//   and a dot that starts a line is doubled.
//
// Then a CR or LF is always part of a CRLF, the byte after CRLF "." is
// another ".", and the only end-of-data sequence any reader can find is
// the final one. The mapping keeps the line structure that qmail-local,
// filters and the queue saw (they split on LF only):
//
//   LF                  -> CRLF
//   CR directly before LF -> merged into that CRLF (a message stored with
//                          CRLF line ends goes out as it was meant)
//   any other CR, NUL   -> a space (as Postfix's cleanup_replace_stray_cr_lf
//                          does for CR: turning a CR into a line break would
//                          make new header lines nobody here saw)

public struct SMTPDataEncoder {
    private var atLineStart = true
    private var pendingCR = false

    public init() {}

    /// True when the input so far stops inside a line (no final LF).
    public var insideLine: Bool { pendingCR || !atLineStart }

    @inline(__always) private mutating func text(_ c: UInt8, _ out: inout [UInt8]) {
        if atLineStart && c == Ascii.dot { out.append(Ascii.dot) }
        out.append(c)
        atLineStart = false
    }

    /// Appends the wire form of `chunk` to `out`.
    public mutating func encode(_ chunk: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        for c in chunk {
            if pendingCR {
                pendingCR = false
                if c == Ascii.lf { out.append(Ascii.cr); out.append(Ascii.lf); atLineStart = true; continue }
                text(Ascii.space, &out)
            }
            switch c {
            case Ascii.lf: out.append(Ascii.cr); out.append(Ascii.lf); atLineStart = true
            case Ascii.cr: pendingCR = true
            case Ascii.nul: text(Ascii.space, &out)
            default: text(c, &out)
            }
        }
    }

    public mutating func encode(_ bytes: [UInt8], into out: inout [UInt8]) {
        bytes.withUnsafeBytes { encode($0, into: &out) }
    }

    /// Ends the text: a last line without LF gets CRLF, then "." CRLF.
    /// (qmail-remote refuses such a line before calling this, as qmail does.)
    public mutating func finish(into out: inout [UInt8]) {
        if pendingCR { pendingCR = false; text(Ascii.space, &out) }
        if !atLineStart { out.append(Ascii.cr); out.append(Ascii.lf); atLineStart = true }
        out.append(Ascii.dot); out.append(Ascii.cr); out.append(Ascii.lf)
    }

    /// The whole DATA text of `message`.
    public static func data(_ message: [UInt8]) -> [UInt8] {
        var e = SMTPDataEncoder()
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 40 + 8)
        e.encode(message, into: &out)
        e.finish(into: &out)
        return out
    }
}
