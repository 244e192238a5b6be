// The envelope address of a MAIL or RCPT command, parsed as qmail-smtpd's
// addrparse does: take what is inside <...> (or, for clients that ignore
// RFC 821, the word after the colon), drop a source route "@a,@b:", remove
// quoting and backslash escapes. Then the ESMTP parameters after '>'.
import QmailCore
import QmailNet

public struct EnvelopeArgument: Equatable {
    public var address: [UInt8]
    /// Parameters after the address, keys uppercased: ("SIZE", "1234").
    public var parameters: [(key: String, value: [UInt8])]

    public static func == (a: EnvelopeArgument, b: EnvelopeArgument) -> Bool {
        a.address == b.address && a.parameters.map { $0.key } == b.parameters.map { $0.key }
            && a.parameters.map { $0.value } == b.parameters.map { $0.value }
    }

    public func parameter(_ key: String) -> [UInt8]? {
        parameters.first { $0.key == key }?.value
    }
}

public enum AddressParse {
    /// qmail's limit on an envelope address.
    public static let maxLength = 900

    /// Parses `arg` (everything after "MAIL" or "RCPT", e.g. "FROM:<a@b> SIZE=10").
    /// Returns nil on a syntax error (qmail's 555).
    public static func parse(_ arg: [UInt8]) -> EnvelopeArgument? {
        var i = 0
        var terminator: UInt8 = 62 // '>'
        if let lt = arg.firstIndex(of: 60) {
            i = lt + 1
        } else {
            terminator = Ascii.space
            i = arg.firstIndex(of: Ascii.colon).map { $0 + 1 } ?? arg.count
            while i < arg.count && arg[i] == Ascii.space { i += 1 }
        }
        // A source route "@a,@b:" goes: only the mailbox after it counts.
        if i < arg.count && arg[i] == Ascii.at {
            while i < arg.count {
                let c = arg[i]
                i += 1
                if c == Ascii.colon { break }
            }
        }
        var addr: [UInt8] = []
        var escaped = false
        var quoted = false
        var closed = false
        while i < arg.count {
            let c = arg[i]
            i += 1
            if escaped { addr.append(c); escaped = false; continue }
            if !quoted && c == terminator { closed = true; break }
            switch c {
            case 92: escaped = true
            case 34: quoted.toggle()
            default: addr.append(c)
            }
        }
        if addr.count > maxLength { return nil }
        var params: [(String, [UInt8])] = []
        if closed {
            for word in arg[i...].split(separator: Ascii.space) where !word.isEmpty {
                let w = Array(word)
                if let eq = w.firstIndex(of: Ascii.equals) {
                    params.append((String(decoding: w[0..<eq].map(upper), as: UTF8.self), Array(w[(eq + 1)...])))
                } else {
                    params.append((String(decoding: w.map(upper), as: UTF8.self), []))
                }
            }
        }
        return EnvelopeArgument(address: addr, parameters: params)
    }

    private static func upper(_ c: UInt8) -> UInt8 { (c >= 97 && c <= 122) ? c - 32 : c }

    /// qmail's localiphost rule: "box@[ip]" where ip is one of ours becomes
    /// "box@localiphost". IPv6 literals ("[IPv6:...]") are handled the same way.
    public static func applyLocalIPHost(_ addr: [UInt8], localIPHost: [UInt8], ipme: Set<IPAddress>) -> [UInt8] {
        guard let at = addr.lastIndex(of: Ascii.at) else { return addr }
        let domain = Array(addr[(at + 1)...])
        guard domain.first == 91, let ip = IPAddress(literal: domain) else { return addr }
        guard ipme.contains(ip) || ipme.contains(ip.unmapped) else { return addr }
        return Array(addr[...at]) + localIPHost
    }

    /// True when the address carries bytes outside ASCII (needs SMTPUTF8).
    public static func isEightBit(_ addr: [UInt8]) -> Bool { addr.contains { $0 >= 128 } }
}
