// djb's netstrings ("5:hello,") for QMQP and QMTP.
import QmailCore

public enum Netstring {
    public static func encode(_ b: [UInt8]) -> [UInt8] {
        Array("\(b.count):".utf8) + b + [44]
    }

    /// Reads "N:" from the channel; nil on bad syntax or end of input.
    public static func readLength(_ ch: Channel, limit: Int = 2_000_000_000) throws -> Int? {
        var n = 0
        var digits = 0
        while true {
            guard let c = try ch.byte() else { return nil }
            if c == Ascii.colon { return digits > 0 ? n : nil }
            guard Ascii.isDigit(c), digits < 10 else { return nil }
            n = n * 10 + Int(c - 48)
            digits += 1
            if n > limit { return nil }
        }
    }

    /// Reads a whole netstring of at most `limit` bytes.
    public static func read(_ ch: Channel, limit: Int) throws -> [UInt8]? {
        guard let n = try readLength(ch, limit: limit) else { return nil }
        var out: [UInt8] = []
        guard try ch.read(exactly: n, into: { out += $0 }) else { return nil }
        guard try ch.byte() == 44 else { return nil }
        return out
    }

    /// Splits a buffer holding consecutive netstrings; nil when malformed.
    public static func split(_ b: [UInt8]) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        var i = 0
        while i < b.count {
            var n = 0
            var digits = 0
            while i < b.count, Ascii.isDigit(b[i]), digits < 10 { n = n * 10 + Int(b[i] - 48); i += 1; digits += 1 }
            guard digits > 0, i < b.count, b[i] == Ascii.colon, i + 1 + n < b.count, b[i + 1 + n] == 44 else { return nil }
            out.append(Array(b[(i + 1)..<(i + 1 + n)]))
            i += n + 2
        }
        return out
    }
}
