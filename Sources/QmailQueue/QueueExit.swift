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
    case envelopeFormat = 91

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
