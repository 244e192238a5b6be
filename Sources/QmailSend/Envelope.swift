// The queue's internal files, in qmail's format: NUL-terminated records,
// each starting with one letter. todo/N (written by qmail-queue) holds
// u<uid>, p<pid>, F<sender>, then T<recipient> per recipient; info/N holds
// F<sender>; local/N and remote/N hold T<recipient> per recipient, the T
// overwritten in place by D once that recipient is done.

import QmailCore

public struct TodoEnvelope: Equatable {
    public var uid: Int = 0
    public var pid: Int = 0
    public var sender: [UInt8] = []
    public var recipients: [[UInt8]] = []

    public init(uid: Int = 0, pid: Int = 0, sender: [UInt8] = [], recipients: [[UInt8]] = []) {
        self.uid = uid
        self.pid = pid
        self.sender = sender
        self.recipients = recipients
    }

    /// Parses todo/N. Returns nil when the file is damaged (no sender record
    /// or an unterminated record): qmail-queue never writes one, so it is
    /// left alone for a human to look at.
    public static func parse(_ data: [UInt8]) -> TodoEnvelope? {
        var env = TodoEnvelope()
        var sawSender = false
        for rec in Records.split(data) {
            guard let r = rec else { return nil }
            guard let kind = r.first else { continue }
            let body = Array(r.dropFirst())
            switch kind {
            case UInt8(ascii: "u"): env.uid = Decimal.scanPrefixQ(body)
            case UInt8(ascii: "p"): env.pid = Decimal.scanPrefixQ(body)
            case UInt8(ascii: "F"): env.sender = body; sawSender = true
            case UInt8(ascii: "T"): env.recipients.append(body)
            default: break
            }
        }
        return sawSender ? env : nil
    }
}

/// One recipient line of local/N or remote/N.
public struct ChannelRecipient: Equatable {
    /// Offset of the T/D letter, where markdone writes.
    public let offset: Int
    public let address: [UInt8]
    public let done: Bool
}

public enum Records {
    /// Splits NUL-terminated records; a trailing unterminated record is nil.
    public static func split(_ data: [UInt8]) -> [[UInt8]?] {
        var out: [[UInt8]?] = []
        var start = 0
        for i in 0..<data.count where data[i] == 0 {
            out.append(Array(data[start..<i]))
            start = i + 1
        }
        if start < data.count { out.append(nil) }
        return out
    }

    /// The recipients of a channel file. An unterminated last record (a
    /// crash while writing cannot leave one: the file is fsync'd before todo
    /// goes away) is ignored.
    public static func channel(_ data: [UInt8]) -> [ChannelRecipient] {
        var out: [ChannelRecipient] = []
        var start = 0
        for i in 0..<data.count where data[i] == 0 {
            if i > start {
                let k = data[start]
                if k == UInt8(ascii: "T") || k == UInt8(ascii: "D") {
                    out.append(ChannelRecipient(offset: start, address: Array(data[(start + 1)..<i]), done: k == UInt8(ascii: "D")))
                }
            }
            start = i + 1
        }
        return out
    }

    public static func info(sender: [UInt8]) -> [UInt8] {
        [UInt8(ascii: "F")] + sender + [0]
    }

    /// The sender from info/N; nil when damaged.
    public static func sender(fromInfo data: [UInt8]) -> [UInt8]? {
        for rec in split(data) {
            guard let r = rec else { return nil }
            if r.first == UInt8(ascii: "F") { return Array(r.dropFirst()) }
        }
        return nil
    }

    public static func channelFile(_ recipients: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for r in recipients { out.append(UInt8(ascii: "T")); out += r; out.append(0) }
        return out
    }
}

extension Decimal {
    /// scan_ulong: leading digits, 0 when none.
    static func scanPrefixQ(_ b: [UInt8]) -> Int { scanPrefix(b) ?? 0 }
}
