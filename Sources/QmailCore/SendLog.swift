// qmail-send's log lines, kept byte-compatible so qmailanalog and other
// log analysers written for qmail keep working.

public enum SendLog {
    /// qmail-send makes report text safe for one log line: newlines become
    /// '/', anything else outside printable ASCII (and '%') becomes '_'.
    public static func safe(_ text: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.count)
        for c in text {
            if c == Ascii.lf { out.append(Ascii.slash) }
            else if c < 33 || c > 126 || c == Ascii.percent { out.append(95) }
            else { out.append(c) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func safe(_ text: String) -> String { safe(Array(text.utf8)) }

    public static func newMessage(_ id: Int) -> String { "new msg \(id)" }

    public static func info(_ id: Int, bytes: Int, sender: [UInt8], qp: Int, uid: Int) -> String {
        "info msg \(id): bytes \(bytes) from <\(safe(sender))> qp \(qp) uid \(uid)"
    }

    public static func startDelivery(_ d: Int, message: Int, channel: DeliveryChannel, recipient: [UInt8]) -> String {
        "starting delivery \(d): msg \(message) to \(channel.name) \(safe(recipient))"
    }

    public enum Outcome: String { case success, failure, deferral }

    public static func delivery(_ d: Int, _ outcome: Outcome, report: [UInt8]) -> String {
        "delivery \(d): \(outcome.rawValue): \(safe(report))"
    }

    public static func status(local: Int, localMax: Int, remote: Int, remoteMax: Int) -> String {
        "status: local \(local)/\(localMax) remote \(remote)/\(remoteMax)"
    }

    public static func bounce(_ id: Int, qp: Int) -> String { "bounce msg \(id) qp \(qp)" }

    public static func endMessage(_ id: Int) -> String { "end msg \(id)" }

    public static func tripleBounce(_ id: Int) -> String { "triple bounce: discarding bounce/\(id)" }
}
