// qmail-inject's fatal errors: each has its message (printed after
// "qmail-inject: fatal: ") and its kind: permanent (the caller's fault,
// exit 100) or temporary (try again, exit 111).

import QmailCore

public struct InjectFailure: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let kind: MailFailure.Kind

    public init(_ message: String, _ kind: MailFailure.Kind) {
        self.message = message
        self.kind = kind
    }

    /// qmail-inject's exit code: 111 temporary, 100 permanent.
    public var exitCode: Int32 { QmailExit.failure(temporary: kind == .temporary) }

    public var description: String { "qmail-inject: fatal: \(message)" }

    public static let readError = InjectFailure("read error", .temporary)
    public static let writeError = InjectFailure("unable to write output", .temporary)
    public static let controls = InjectFailure("unable to read controls", .temporary)
    public static let queueStart = InjectFailure("unable to run qmail-queue", .temporary)
    public static let noRecipients = InjectFailure("no recipients", .permanent)

    public static func unparsable(_ line: [UInt8]) -> InjectFailure {
        var l = line
        if l.last != Ascii.lf { l.append(Ascii.lf) }
        return InjectFailure("unable to parse this line:\n" + l.string, .permanent)
    }

    public static func badAddress(_ a: String) -> InjectFailure {
        InjectFailure("unable to parse address: \(a)", .permanent)
    }

    public static func headerTooLarge(_ limit: Int) -> InjectFailure {
        InjectFailure("message header exceeds \(limit) bytes", .permanent)
    }

    public static func nulInAddress(_ a: [UInt8]) -> InjectFailure {
        InjectFailure("NUL byte in address: " + a.map { $0 == 0 ? UInt8(ascii: "?") : $0 }.string, .permanent)
    }

    /// qmail-queue's verdict, as qmail-inject prints it.
    public static func queue(_ f: MailFailure) -> InjectFailure {
        InjectFailure(f.description, f.kind)
    }
}
