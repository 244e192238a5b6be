// RFC 822 tokens as djb's tools see them (token822): atoms, quoted
// strings, domain literals, comments and the special characters. The
// tokenizer is deliberately lenient in the same places qmail's is: ')' and
// ']' inside an atom are kept (the atom then counts as quoted), a backslash
// escapes the next byte anywhere, and only an unbalanced quote, comment or
// literal (or a token starting with ')' or ']') is a parse error.

public enum TokenKind: UInt8, Sendable {
    case atom, quote, literal, comment
    case comma, at, dot, left, right, colon, semi
}

public struct Token: Sendable {
    public var kind: TokenKind
    /// The token's text without its delimiters and escapes (empty for specials).
    public var text: [UInt8]

    public init(_ kind: TokenKind, _ text: [UInt8] = []) {
        self.kind = kind
        self.text = text
    }
}

public enum Token822 {
    /// Bytes that end an atom.
    @inline(__always) static func endsAtom(_ c: UInt8) -> Bool {
        switch c {
        case 32, 9, 13, 10, 40, 91, 34, 60, 62, 59, 58, 64, 44, 46: return true // sp tab cr lf ( [ " < > ; : @ , .
        default: return false
        }
    }

    /// Splits `line` into tokens; nil when the line cannot be tokenized.
    public static func parse(_ line: [UInt8]) -> [Token]? {
        var toks: [Token] = []
        toks.reserveCapacity(16)
        let n = line.count
        var i = 0
        return line.withUnsafeBufferPointer { s -> [Token]? in
            while i < n {
                let c = s[i]
                switch c {
                case 46: toks.append(Token(.dot)); i += 1
                case 44: toks.append(Token(.comma)); i += 1
                case 64: toks.append(Token(.at)); i += 1
                case 60: toks.append(Token(.left)); i += 1
                case 62: toks.append(Token(.right)); i += 1
                case 58: toks.append(Token(.colon)); i += 1
                case 59: toks.append(Token(.semi)); i += 1
                case 32, 9, 13, 10: i += 1
                case 41, 93: return nil // ')' or ']' cannot start a token
                case 40: // comment; nested parentheses are dropped from its text
                    var text: [UInt8] = []
                    var level = 1
                    while level > 0 {
                        i += 1
                        if i >= n { return nil }
                        switch s[i] {
                        case 40: level += 1
                        case 41: level -= 1
                        case 92:
                            i += 1
                            if i >= n { return nil }
                            text.append(s[i])
                        default: text.append(s[i])
                        }
                    }
                    i += 1
                    toks.append(Token(.comment, text))
                case 34, 91: // quoted string or domain literal
                    let close: UInt8 = c == 34 ? 34 : 93
                    var text: [UInt8] = []
                    while true {
                        i += 1
                        if i >= n { return nil }
                        let d = s[i]
                        if d == close { break }
                        if d == 92 {
                            i += 1
                            if i >= n { return nil }
                        }
                        text.append(s[i])
                    }
                    i += 1
                    toks.append(Token(c == 34 ? .quote : .literal, text))
                default: // atom: runs until a special; backslash escapes
                    var text: [UInt8] = []
                    var quoted = false
                    repeat {
                        if s[i] == 92 {
                            i += 1
                            if i >= n { break }
                        }
                        let d = s[i]
                        if d < 32 || d > 126 || d == 41 || d == 93 || d == 92 { quoted = true }
                        text.append(d)
                        i += 1
                        if i >= n { break }
                    } while !endsAtom(s[i])
                    toks.append(Token(quoted ? .quote : .atom, text))
                }
            }
            return toks
        }
    }

    /// The address text of `tokens` (in order): quotes and escapes removed,
    /// literals keep their brackets, comments vanish.
    public static func unquote(_ tokens: ArraySlice<Token>) -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens {
            switch t.kind {
            case .comma: out.append(44)
            case .at: out.append(64)
            case .dot: out.append(46)
            case .left: out.append(60)
            case .right: out.append(62)
            case .semi: out.append(59)
            case .colon: out.append(58)
            case .atom, .quote: out += t.text
            case .literal: out.append(91); out += t.text; out.append(93)
            case .comment: break
            }
        }
        return out
    }
}
