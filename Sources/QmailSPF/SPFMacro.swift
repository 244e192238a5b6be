// Macro expansion (RFC 7208 section 7): %{letter digits r delimiters},
// %%, %_ and %-. Uppercase letters URL-escape their value; c, r and t are
// allowed only in explanation text.
import QmailCore
import QmailNet

struct SPFMacro {
    static let delimiters: Set<Character> = [".", "-", "+", ",", "/", "_", "="]

    /// Throws permerror when `s` is not a macro-string.
    static func checkSyntax(_ s: String, exp: Bool) throws {
        _ = try expand(s, exp: exp) { _ in "" }
    }

    /// Expands `s`; `value` gives the text of a (lowercased) macro letter.
    static func expand(_ s: String, exp: Bool, value: (Character) throws -> String) throws -> String {
        var out = ""
        var it = Array(s)
        var i = 0
        if it.count > 8192 { it = Array(it[0..<8192]) }
        while i < it.count {
            let c = it[i]
            i += 1
            if c != "%" { out.append(c); continue }
            guard i < it.count else { throw SPFStop.perm("lone % in \(s)") }
            let n = it[i]
            i += 1
            switch n {
            case "%": out += "%"
            case "_": out += " "
            case "-": out += "%20"
            case "{":
                guard i < it.count else { throw SPFStop.perm("unterminated macro in \(s)") }
                let letter = it[i]
                i += 1
                let lower = Character(letter.lowercased())
                guard "slodipvh".contains(lower) || (exp && "crt".contains(lower)) else {
                    throw SPFStop.perm("unknown macro letter \(letter)")
                }
                var digits = ""
                while i < it.count, it[i].isASCII, it[i].isNumber { digits.append(it[i]); i += 1 }
                var reverse = false
                if i < it.count, it[i] == "r" || it[i] == "R" { reverse = true; i += 1 }
                var delims: Set<Character> = []
                while i < it.count, delimiters.contains(it[i]) { delims.insert(it[i]); i += 1 }
                guard i < it.count, it[i] == "}" else { throw SPFStop.perm("bad macro in \(s)") }
                i += 1
                var keep = Int.max
                if !digits.isEmpty {
                    guard let k = Int(digits.prefix(4)), k > 0 else { throw SPFStop.perm("bad macro digits in \(s)") }
                    keep = k
                }
                if delims.isEmpty { delims = ["."] }
                var parts = try value(lower).split(omittingEmptySubsequences: false, whereSeparator: { delims.contains($0) })
                if reverse { parts.reverse() }
                if parts.count > keep { parts = Array(parts.suffix(keep)) }
                let text = parts.joined(separator: ".")
                out += letter.isUppercase ? urlEscape(text) : text
            default:
                throw SPFStop.perm("bad macro in \(s)")
            }
        }
        return out
    }

    static func urlEscape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let ch = Character(UnicodeScalar(b))
            if b < 0x80, ch.isLetter || ch.isNumber || "-._~".contains(ch) {
                out.append(ch)
            } else {
                out += "%" + String(b, radix: 16, uppercase: true).leftPad(2)
            }
        }
        return out
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
