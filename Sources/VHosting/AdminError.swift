// The admin commands' failure, with its exit code.
import QmailCore
import UserDirectory

/// An admin command's failure. `usage` and `refused` are the caller's
/// mistakes (exit 1, nothing written); `system` is the machine's (exit 111).
public enum AdminError: Error, CustomStringConvertible {
    case usage(String)
    case refused(String)
    case system(String)

    public var description: String {
        switch self {
        case .usage(let s): return "usage: \(s)"
        case .refused(let s): return s
        case .system(let s): return s
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .usage, .refused: return 1
        case .system: return QmailExit.temporary
        }
    }

    /// Wraps whatever a step threw: name errors are the caller's, the rest
    /// the system's.
    static func from(_ e: Error) -> AdminError {
        if let a = e as? AdminError { return a }
        if let n = e as? NameError { return .refused(n.description) }
        if let f = e as? MailFailure, !f.isTemporary { return .refused(f.text) }
        return .system("\(e)")
    }
}
