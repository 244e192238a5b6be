// Bounces the way qmail-send writes them: each permanent failure is
// appended to bounce/N as "<recipient>:\nreport\n\n" (fsync'd before the
// recipient is marked done); when the message is finished the collected
// text goes back to the sender in qmail's QSBMF format.

import QmailCore

public enum Bounce {
    /// The record for one failed recipient. Newlines in the address become
    /// '_'; a blank line inside the report becomes "/" so that the record
    /// ends at the first blank line.
    public static func record(recipient: [UInt8], report: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "<")]
        out += recipient.map { $0 == Ascii.lf ? UInt8(ascii: "_") : $0 }
        out += Array(">:\n".utf8)
        let headerLen = out.count
        out += report
        if !report.isEmpty && report.last != Ascii.lf { out.append(Ascii.lf) }
        var i = out.count - 2
        while i > headerLen {
            if out[i] == Ascii.lf && out[i - 1] == Ascii.lf { out[i] = Ascii.slash }
            i -= 1
        }
        out.append(Ascii.lf)
        return out
    }

    public struct Settings: Equatable {
        public var bounceFrom: [UInt8]
        public var bounceHost: [UInt8]
        public var doubleBounceTo: [UInt8]
        public var doubleBounceHost: [UInt8]

        public init(bounceFrom: [UInt8], bounceHost: [UInt8], doubleBounceTo: [UInt8], doubleBounceHost: [UInt8]) {
            self.bounceFrom = bounceFrom
            self.bounceHost = bounceHost
            self.doubleBounceTo = doubleBounceTo
            self.doubleBounceHost = doubleBounceHost
        }

        public static func load(_ c: Control) throws -> Settings {
            Settings(bounceFrom: try c.lineWithDefault("bouncefrom") ?? Array("MAILER-DAEMON".utf8),
                     bounceHost: try c.lineWithDefault("bouncehost") ?? Array("bouncehost".utf8),
                     doubleBounceTo: try c.lineWithDefault("doublebounceto") ?? Array("postmaster".utf8),
                     doubleBounceHost: try c.lineWithDefault("doublebouncehost") ?? Array("doublebouncehost".utf8))
        }
    }

    /// qmail's sender for double bounces, so that they never bounce again.
    public static let doubleBounceSender: [UInt8] = Array("#@[]".utf8)

    public enum Plan: Equatable {
        /// Inject a message from `sender` to `recipient`.
        case send(sender: [UInt8], recipient: [UInt8], double: Bool)
        /// A bounce of a double bounce, or doublebounceto is empty: log and drop.
        case discard
    }

    /// Where the bounce of a message from `originalSender` goes.
    public static func plan(originalSender: [UInt8], settings: Settings) -> Plan {
        if originalSender == doubleBounceSender { return .discard }
        if originalSender.isEmpty {
            if settings.doubleBounceTo.isEmpty { return .discard }
            return .send(sender: doubleBounceSender,
                         recipient: settings.doubleBounceTo + [Ascii.at] + settings.doubleBounceHost, double: true)
        }
        return .send(sender: [], recipient: originalSender, double: false)
    }

    /// Header and text up to the copy of the message.
    public static func head(recipient: [UInt8], double: Bool, records: [UInt8], settings: Settings, now: Int) -> [UInt8] {
        var out: [UInt8] = []
        out += Array("Date: \(Date822.qmail(now))\n".utf8)
        out += Array("From: ".utf8) + settings.bounceFrom + [Ascii.at] + settings.bounceHost
        out += Array("\nTo: ".utf8) + recipient
        out += Array("\nSubject: failure notice\n\nHi. This is the qmail-send program at ".utf8) + settings.bounceHost
        if double {
            out += Array(".\nI tried to deliver a bounce message to this address, but the bounce bounced!\n\n".utf8)
        } else {
            out += Array(".\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n".utf8)
        }
        out += records
        out += Array((double ? "--- Below this line is the original bounce.\n\n"
                             : "--- Below this line is a copy of the message.\n\n").utf8)
        return out
    }
}
