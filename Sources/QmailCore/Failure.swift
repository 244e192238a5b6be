// One failure value for the whole system: every failure is temporary
// (defer, retry: 4xx, exit 111, 'Z') or permanent (bounce: 5xx, exit 100,
// 'D'), decided where it happens and carried as a value. Each interface
// encodes it its own way.

public struct MailFailure: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable { case temporary, permanent }
    public let kind: Kind
    /// Human text without the status, e.g. "qq write error or disk full".
    public let text: String
    /// Enhanced status code, e.g. "4.3.0".
    public let status: String
    /// A whole SMTP reply line chosen by the program that refused (a
    /// content filter's "554 5.7.1 virus X found"), shown instead of
    /// qmail's "554 text (#status)"; its first digit agrees with `kind`.
    public var reply: String? = nil

    public init(_ kind: Kind, _ text: String, status: String? = nil) {
        self.kind = kind
        self.text = text
        self.status = status ?? (kind == .temporary ? "4.3.0" : "5.3.0")
    }

    public static func temporary(_ text: String, _ status: String = "4.3.0") -> MailFailure {
        MailFailure(.temporary, text, status: status)
    }

    public static func permanent(_ text: String, _ status: String = "5.3.0") -> MailFailure {
        MailFailure(.permanent, text, status: status)
    }

    public var isTemporary: Bool { kind == .temporary }

    /// "text (#4.3.0)", qmail's way of showing the status.
    public var description: String { "\(text) (#\(status))" }

    /// The SMTP reply line without CRLF: the refusing program's own reply,
    /// else qmail's "451 text (#4.3.0)" or "554 text (#5.3.0)".
    public var smtpReply: String { reply ?? (smtpCode + " " + description) }

    /// The SMTP code qmail-smtpd gives a failure without a reply of its own.
    public var smtpCode: String { isTemporary ? "451" : "554" }

    /// The qmail report form: "Ztext (#4.3.0)" or "Dtext (#5.3.0)".
    public var report: String { (isTemporary ? "Z" : "D") + description }

    /// The exit code of programs with qmail's 0/100/111 convention.
    public var exitCode: Int32 { QmailExit.failure(temporary: isTemporary) }
}
