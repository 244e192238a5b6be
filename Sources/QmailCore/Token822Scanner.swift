// RFC 822 tokens as djb's tools see them (token822): atoms, quoted
// strings, domain literals, comments and the special characters. The
// tokenizer is deliberately lenient in the same places qmail's is: ')' and
// ']' inside an atom are kept (the atom then counts as quoted), a backslash
// escapes the next byte anywhere, and only an unbalanced quote, comment or
// literal (or a token starting with ')' or ']') is a parse error.
//
// The one RFC 822 tokenizer: fastforward's tables and .forward/.qmail lines
// use its tokens as they come (offsets into one buffer reused from line to
// line: no allocation per token), and qmail-inject turns them into
// Token822 values it can edit (QmailInject/Token822.swift).

public enum TokenKind: UInt8, Sendable {
    case atom, quote, literal, comment
    case comma, at, dot, left, right, colon, semi
}

/// A token: its kind and where its text (without delimiters and escapes)
/// sits in its line's `Tokens.chars`. Plain values: no allocation per token.
public struct Token: Sendable {
    public var kind: TokenKind
    public var start: Int
    public var end: Int

    @inlinable public init(kind: TokenKind, start: Int, end: Int) {
        self.kind = kind; self.start = start; self.end = end
    }
}

/// The tokens of one line and the bytes of their texts (`chars` may be
/// longer than the texts: it is scratch space reused from line to line).
public struct Tokens: Sendable {
    public var list: [Token] = []
    public var chars: [UInt8] = []

    @inlinable public init() {}

    @inlinable public func text(_ t: Token) -> ArraySlice<UInt8> { chars[t.start..<t.end] }
}

/// The allocation-free tokenizer (see the top of the file). Inlinable, so
/// that newaliases' loop over 100,000 lines compiles as it did when the
/// scanner lived in its module.
public enum Token822Scanner {
    /// Bytes that end an atom.
    @inlinable @inline(__always) static func endsAtom(_ c: UInt8) -> Bool {
        switch c {
        case 32, 9, 13, 10, 40, 91, 34, 60, 62, 59, 58, 64, 44, 46: return true // sp tab cr lf ( [ " < > ; : @ , .
        default: return false
        }
    }

    /// Splits `line` into tokens; nil when the line cannot be tokenized.
    @inlinable public static func parse(_ line: [UInt8]) -> Tokens? {
        var r = Tokens()
        return parse(line[...], into: &r) ? r : nil
    }

    /// Tokenizes `line` into `r`, reusing its storage; false on a syntax error.
    @inlinable public static func parse(_ line: ArraySlice<UInt8>, into r: inout Tokens) -> Bool {
        line.withUnsafeBufferPointer { parse($0, into: &r) }
    }

    @inlinable public static func parse(_ line: UnsafeBufferPointer<UInt8>, into r: inout Tokens) -> Bool {
        var list = r.list
        var chars = r.chars
        r = Tokens()
        list.removeAll(keepingCapacity: true)
        // A token's text is never longer than the line: size the scratch once.
        if chars.count < line.count { chars = [UInt8](repeating: 0, count: Swift.max(line.count, chars.count * 2)) }
        let ok = chars.withUnsafeMutableBufferPointer { c in parse(line, &list, c) }
        r.list = list
        r.chars = chars
        return ok
    }

    @inlinable static func parse(_ s: UnsafeBufferPointer<UInt8>, _ list: inout [Token], _ c: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        var k = 0 // bytes used in c
        let n = s.count
        var i = 0
        while i < n {
            let ch = s[i]
            switch ch {
            case 46: list.append(Token(kind: .dot, start: 0, end: 0)); i += 1
            case 44: list.append(Token(kind: .comma, start: 0, end: 0)); i += 1
            case 64: list.append(Token(kind: .at, start: 0, end: 0)); i += 1
            case 60: list.append(Token(kind: .left, start: 0, end: 0)); i += 1
            case 62: list.append(Token(kind: .right, start: 0, end: 0)); i += 1
            case 58: list.append(Token(kind: .colon, start: 0, end: 0)); i += 1
            case 59: list.append(Token(kind: .semi, start: 0, end: 0)); i += 1
            case 32, 9, 13, 10: i += 1
            case 41, 93: return false // ')' or ']' cannot start a token
            case 40: // comment; nested parentheses are dropped from its text
                let start = k
                var level = 1
                while level > 0 {
                    i += 1
                    if i >= n { return false }
                    switch s[i] {
                    case 40: level += 1
                    case 41: level -= 1
                    case 92:
                        i += 1
                        if i >= n { return false }
                        c[k] = s[i]; k += 1
                    default: c[k] = s[i]; k += 1
                    }
                }
                i += 1
                list.append(Token(kind: .comment, start: start, end: k))
            case 34, 91: // quoted string or domain literal
                let close: UInt8 = ch == 34 ? 34 : 93
                let start = k
                while true {
                    i += 1
                    if i >= n { return false }
                    let d = s[i]
                    if d == close { break }
                    if d == 92 {
                        i += 1
                        if i >= n { return false }
                    }
                    c[k] = s[i]; k += 1
                }
                i += 1
                list.append(Token(kind: ch == 34 ? .quote : .literal, start: start, end: k))
            default: // atom: runs until a special; backslash escapes
                let start = k
                var quoted = false
                repeat {
                    if s[i] == 92 {
                        i += 1
                        if i >= n { break }
                    }
                    let d = s[i]
                    if d < 32 || d > 126 || d == 41 || d == 93 || d == 92 { quoted = true }
                    c[k] = d; k += 1
                    i += 1
                    if i >= n { break }
                } while !endsAtom(s[i])
                list.append(Token(kind: quoted ? .quote : .atom, start: start, end: k))
            }
        }
        return true
    }
}
