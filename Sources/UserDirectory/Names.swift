// Validation of the names that become file names, file lines and cdb keys:
// mailbox names, domain names, passwords and comments. Anything that could
// climb out of a directory ('/', ".."), split a line (newline, ':') or end a
// C string (NUL) is refused before anything is written.
import QmailCore

public enum NameError: Error, CustomStringConvertible, Equatable {
    case empty(String)
    case tooLong(String, Int)
    case badCharacter(String, UInt8)
    case badForm(String, String)

    public var description: String {
        switch self {
        case .empty(let what): return "\(what) is empty"
        case .tooLong(let what, let max): return "\(what) is longer than \(max) bytes"
        case .badCharacter(let what, let c):
            let shown = (c >= 33 && c < 127) ? "'\(Character(Unicode.Scalar(c)))'" : "byte \(c)"
            return "\(what) contains \(shown), which is not allowed"
        case .badForm(let what, let why): return "\(what) \(why)"
        }
    }
}

public enum Names {
    public static let maxUser = 64
    public static let maxDomain = 253
    public static let maxPassword = 256
    public static let maxGecos = 128

    /// A mailbox (or alias) name: lowercase letters, digits and . _ - + ;
    /// not starting with '.' or '-', no "..". Upper case is folded.
    public static func user(_ raw: [UInt8]) throws -> [UInt8] {
        let what = "user name"
        if raw.isEmpty { throw NameError.empty(what) }
        if raw.count > maxUser { throw NameError.tooLong(what, maxUser) }
        let name = raw.lowercasedASCII()
        for c in name {
            let ok = (c >= 97 && c <= 122) || Ascii.isDigit(c) || c == Ascii.dot || c == 95 || c == Ascii.minus || c == Ascii.plus
            if !ok { throw NameError.badCharacter(what, c) }
        }
        if name.first == Ascii.dot || name.first == Ascii.minus { throw NameError.badForm(what, "may not start with '.' or '-'") }
        if containsDotDot(name) { throw NameError.badForm(what, "may not contain \"..\"") }
        return name
    }

    /// A domain name: labels of letters, digits and '-', separated by single
    /// dots. Upper case is folded.
    public static func domain(_ raw: [UInt8]) throws -> [UInt8] {
        let what = "domain name"
        if raw.isEmpty { throw NameError.empty(what) }
        if raw.count > maxDomain { throw NameError.tooLong(what, maxDomain) }
        let name = raw.lowercasedASCII()
        for c in name {
            let ok = (c >= 97 && c <= 122) || Ascii.isDigit(c) || c == Ascii.dot || c == Ascii.minus
            if !ok { throw NameError.badCharacter(what, c) }
        }
        for label in name.split(byte: Ascii.dot) {
            if label.isEmpty { throw NameError.badForm(what, "has an empty label (leading, trailing or double dot)") }
            if label.count > 63 { throw NameError.tooLong("domain label", 63) }
            if label.first == Ascii.minus || label.last == Ascii.minus { throw NameError.badForm(what, "has a label starting or ending with '-'") }
        }
        return name
    }

    /// "user@domain" (or "user%domain") split and checked.
    public static func address(_ raw: [UInt8]) throws -> (user: [UInt8], domain: [UInt8]) {
        let sep = raw.lastIndex(of: Ascii.at) ?? raw.lastIndex(of: Ascii.percent)
        guard let at = sep else { throw NameError.badForm("address", "must be user@domain") }
        return (try user(Array(raw[0..<at])), try domain(Array(raw[(at + 1)...])))
    }

    /// A password to store: no NUL, newline or CR (they cannot reach
    /// checkpassword intact), at most maxPassword bytes.
    public static func password(_ raw: [UInt8]) throws -> [UInt8] {
        let what = "password"
        if raw.isEmpty { throw NameError.empty(what) }
        if raw.count > maxPassword { throw NameError.tooLong(what, maxPassword) }
        for c in raw where c == 0 || c == Ascii.lf || c == Ascii.cr { throw NameError.badCharacter(what, c) }
        return raw
    }

    /// A comment (vpopmail's gecos): printable, no ':'.
    public static func gecos(_ raw: [UInt8]) throws -> [UInt8] {
        let what = "comment"
        if raw.count > maxGecos { throw NameError.tooLong(what, maxGecos) }
        for c in raw where c < 32 || c == 127 || c == Ascii.colon { throw NameError.badCharacter(what, c) }
        return raw
    }

    /// A forwarding target: an address or an absolute Maildir path; no
    /// control bytes.
    public static func forwardTarget(_ raw: [UInt8]) throws -> [UInt8] {
        let what = "alias target"
        if raw.isEmpty { throw NameError.empty(what) }
        if raw.count > 1000 { throw NameError.tooLong(what, 1000) }
        for c in raw where c < 32 || c == 127 { throw NameError.badCharacter(what, c) }
        if raw.first == Ascii.slash {
            if containsDotDot(raw) { throw NameError.badForm(what, "may not contain \"..\"") }
        } else if !raw.contains(Ascii.at) || raw.contains(Ascii.space) {
            throw NameError.badForm(what, "must be an address user@domain or an absolute Maildir path")
        }
        return raw
    }

    static func containsDotDot(_ b: [UInt8]) -> Bool {
        var i = 1
        while i < b.count {
            if b[i] == Ascii.dot && b[i - 1] == Ascii.dot { return true }
            i += 1
        }
        return false
    }
}
