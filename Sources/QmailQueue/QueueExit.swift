import QmailCore

// qmail-queue's exit codes (qmail-queue(8)) and what a caller reports for
// each, as qmail's qmail_close does. The codes are the interface between
// every injector and the queue.

public enum QueueExit: Int32, Sendable {
    case ok = 0
    case addressTooLong = 11
    case permanentRefusal = 31
    case noMemory = 51
    case timeout = 52
    case writeError = 53
    case readError = 54
    case configError = 55
    case networkProblem = 56
    case homeDirectory = 61
    case queueDirectory = 62
    case queuePid = 63
    case queueMess = 64
    case queueIntd = 65
    case queueTodo = 66
    case temporaryRefusal = 71
    case connectTimeout = 72
    case connectRejected = 73
    case communicationFailed = 74
    case internalBug = 81
    /// A filter in qmail-queue's place refused the message and wrote its own
    /// reason (the qmail-queue-custom-error convention: simscan, qmail-scanner).
    case customReply = 82
    case envelopeFormat = 91

    /// The failure a refusing filter described: "D" (permanent) or "Z"
    /// (temporary), then either a whole reply ("554 5.7.1 virus X found",
    /// its first digit 5 for D and 4 for Z) or a bare text that qmail-smtpd
    /// shows after 554 or 451. Nil when the text is not of that form, so
    /// the caller falls back to the exit code's usual meaning.
    public static func customFailure(_ raw: [UInt8]) -> MailFailure? {
        guard let kind = raw.first, kind == UInt8(ascii: "D") || kind == UInt8(ascii: "Z") else { return nil }
        var text = raw.dropFirst().prefix { $0 != 10 && $0 != 13 && $0 != 0 }.prefix(400)
            .map { $0 >= 32 && $0 < 127 ? $0 : UInt8(ascii: "?") }
        while text.last == 32 { text.removeLast() }
        guard !text.isEmpty else { return nil }
        let permanent = kind == UInt8(ascii: "D")
        let s = String(decoding: text, as: UTF8.self)
        let digits = text.prefix(3)
        guard text.count > 4, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }), text[3] == 32,
              digits.first == (permanent ? UInt8(ascii: "5") : UInt8(ascii: "4")) else {
            var f = permanent ? MailFailure.permanent(s) : MailFailure.temporary(s)
            f.reply = f.smtpCode + " " + s
            return f
        }
        // "554 5.7.1 text": the text and its enhanced status apart, for
        // interfaces that show them qmail's way ("text (#5.7.1)").
        var rest = String(s.dropFirst(4))
        var status: String? = nil
        if let sp = rest.firstIndex(of: " "), rest[..<sp].split(separator: ".").count == 3,
           rest[..<sp].allSatisfy({ $0.isNumber || $0 == "." }), rest.first == s.first {
            status = String(rest[..<sp])
            rest = String(rest[rest.index(after: sp)...])
        } else if rest.hasSuffix(")"), let open = rest.lastIndex(of: "("), open > rest.startIndex,
                  rest[rest.index(before: open)] == " ", rest[rest.index(after: open)...].hasPrefix("#") {
            // qmail's own form, "451 qq write error or disk full (#4.3.0)"
            status = String(rest[rest.index(open, offsetBy: 2)...].dropLast())
            rest = String(rest[..<rest.index(before: open)])
        }
        var f = MailFailure(permanent ? .permanent : .temporary, rest, status: status)
        f.reply = s
        return f
    }

    /// What an injector says about a qmail-queue exit status, the texts and
    /// enhanced codes qmail uses; nil for success. 120 means "could not
    /// exec". Unknown codes 11..40 are permanent, anything else temporary.
    public static func failure(forExitCode code: Int32) -> MailFailure? {
        switch code {
        case 0: return nil
        case 11, 115: return .permanent("envelope address too long for qq", "5.1.3")
        case 31: return .permanent("mail server permanently rejected message", "5.3.0")
        case 51: return .temporary("qq out of memory")
        case 52: return .temporary("qq timeout")
        case 53: return .temporary("qq write error or disk full")
        case 54: return .temporary("qq read error")
        case 55: return .temporary("qq unable to read configuration")
        case 56: return .temporary("qq trouble making network connection")
        case 61: return .temporary("qq trouble in home directory")
        case 62, 63, 64, 65, 66: return .temporary("qq trouble creating files in queue")
        case 71: return .temporary("mail server temporarily rejected message")
        case 72: return .temporary("connection to mail server timed out", "4.4.1")
        case 73: return .temporary("connection to mail server rejected", "4.4.1")
        case 74: return .temporary("communication with mail server failed", "4.4.2")
        case 81, 91: return .temporary("qq internal bug")
        case 120: return .temporary("unable to exec qq")
        default:
            if code >= 11 && code <= 40 { return .permanent("qq permanent problem") }
            return .temporary("qq temporary problem")
        }
    }
}
