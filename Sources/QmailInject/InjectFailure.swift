// qmail-inject's fatal errors: each has its message (printed after
// "qmail-inject: fatal: ") and its exit code, 100 (the caller's fault,
// permanent) or 111 (try again).

import QmailCore

public struct InjectFailure: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let exitCode: Int32

    public init(_ message: String, exitCode: Int32) {
        self.message = message
        self.exitCode = exitCode
    }

    public var description: String { "qmail-inject: fatal: \(message)" }

    public static let readError = InjectFailure("read error", exitCode: 111)
    public static let writeError = InjectFailure("unable to write output", exitCode: 111)
    public static let controls = InjectFailure("unable to read controls", exitCode: 111)
    public static let queueStart = InjectFailure("unable to run qmail-queue", exitCode: 111)
    public static let noRecipients = InjectFailure("no recipients", exitCode: 100)

    public static func unparsable(_ line: [UInt8]) -> InjectFailure {
        var l = line
        if l.last != Ascii.lf { l.append(Ascii.lf) }
        return InjectFailure("unable to parse this line:\n" + l.string, exitCode: 100)
    }

    public static func badAddress(_ a: String) -> InjectFailure {
        InjectFailure("unable to parse address: \(a)", exitCode: 100)
    }

    public static func headerTooLarge(_ limit: Int) -> InjectFailure {
        InjectFailure("message header exceeds \(limit) bytes", exitCode: 100)
    }

    public static func nulInAddress(_ a: [UInt8]) -> InjectFailure {
        InjectFailure("NUL byte in address: " + a.map { $0 == 0 ? UInt8(ascii: "?") : $0 }.string, exitCode: 100)
    }

    /// qmail-queue's verdict, as qmail-inject prints it.
    public static func queue(_ f: MailFailure) -> InjectFailure {
        InjectFailure(f.description, exitCode: f.exitCode)
    }
}
