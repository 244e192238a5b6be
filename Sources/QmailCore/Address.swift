// Envelope addresses as qmail handles them: "local@domain" with the split
// at the last '@', and the local part quoted with qmail's rules when it is
// written into a header or an SMTP command.

public enum Address {
    /// Characters a local part may carry unquoted (atext plus '.').
    private static let atomOK: [Bool] = {
        var t = [Bool](repeating: false, count: 128)
        for c in UInt8(33)...UInt8(126) { t[Int(c)] = true }
        for c in Array("\"(),:;<>@[\\]".utf8) { t[Int(c)] = false }
        return t
    }()

    /// True when the local part must be quoted: empty, a special or
    /// non-ASCII character, a leading or trailing dot, or two dots in a row.
    public static func needsQuoting(_ local: some Collection<UInt8>) -> Bool {
        if local.isEmpty { return true }
        var prev: UInt8 = 0
        for c in local {
            if c >= 128 || !atomOK[Int(c)] { return true }
            if c == Ascii.dot && prev == Ascii.dot { return true }
            prev = c
        }
        return local.first == Ascii.dot || prev == Ascii.dot
    }

    /// The local part, quoted if it must be.
    public static func quoteLocal(_ local: [UInt8]) -> [UInt8] {
        guard needsQuoting(local) else { return local }
        var out: [UInt8] = [34]
        for c in local {
            if c == Ascii.cr || c == Ascii.lf || c == 34 || c == 92 { out.append(92) }
            out.append(c)
        }
        out.append(34)
        return out
    }

    /// "local@domain" with the local part quoted as needed; the empty
    /// address stays empty.
    public static func quote(_ address: [UInt8]) -> [UInt8] {
        if address.isEmpty { return address }
        guard let at = address.lastIndex(of: Ascii.at) else { return quoteLocal(address) }
        return quoteLocal(Array(address[0..<at])) + address[at...]
    }

    /// Splits at the last '@'; the domain is nil when there is none.
    public static func split(_ address: [UInt8]) -> (local: [UInt8], domain: [UInt8]?) {
        guard let at = address.lastIndex(of: Ascii.at) else { return (address, nil) }
        return (Array(address[0..<at]), Array(address[(at + 1)...]))
    }
}
