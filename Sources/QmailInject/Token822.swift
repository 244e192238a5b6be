// RFC 822 header tokens the way qmail-inject sees them: a field is split
// into atoms, quoted strings, domain literals, comments and punctuation;
// address lists are walked right to left (that is where they are
// unambiguous) and each address is handed to a rewriting callback; the
// result is written back with qmail's spacing and its folding after commas.

public struct Token822: Equatable, Sendable {
    public enum Kind: Sendable { case atom, quote, literal, comment, left, right, at, comma, colon, semi, dot }
    public var kind: Kind
    /// Unescaped contents for atom, quote, literal and comment; empty otherwise.
    public var text: [UInt8]

    public init(_ kind: Kind, _ text: [UInt8] = []) {
        self.kind = kind
        self.text = text
    }

    var isWord: Bool {
        switch kind {
        case .atom, .quote, .literal, .comment: return true
        default: return false
        }
    }
}

public enum Token822Parser {
    /// Bytes that end an atom.
    @inline(__always) static func atomOK(_ c: UInt8) -> Bool {
        switch c {
        case 32, 9, 13, 10, 40, 91, 34, 60, 62, 59, 58, 64, 44, 46: return false  // sp tab cr lf ( [ " < > ; : @ , .
        default: return true
        }
    }

    /// Splits `s` into tokens; nil on unbalanced brackets, quotes or comments.
    public static func parse(_ s: [UInt8]) -> [Token822]? {
        var out: [Token822] = []
        var i = 0
        let n = s.count
        while i < n {
            let c = s[i]
            switch c {
            case 46: out.append(Token822(.dot))
            case 44: out.append(Token822(.comma))
            case 64: out.append(Token822(.at))
            case 60: out.append(Token822(.left))
            case 62: out.append(Token822(.right))
            case 58: out.append(Token822(.colon))
            case 59: out.append(Token822(.semi))
            case 32, 9, 13, 10: break
            case 41, 93: return nil  // ) or ] with no opener
            case 40, 34, 91:  // ( " [
                let kind: Token822.Kind = c == 40 ? .comment : (c == 34 ? .quote : .literal)
                let close: UInt8 = c == 40 ? 41 : (c == 34 ? 34 : 93)
                var text: [UInt8] = []
                var level = 1
                while level > 0 {
                    i += 1
                    if i >= n { return nil }
                    let d = s[i]
                    if d == close {
                        level -= 1
                    } else if c == 40 && d == 40 {
                        level += 1  // nested comment: its parentheses are dropped
                    } else if d == 92 {
                        i += 1
                        if i >= n { return nil }
                        text.append(s[i])
                    } else {
                        text.append(d)
                    }
                }
                out.append(Token822(kind, text))
            default:
                var text: [UInt8] = []
                repeat {
                    if s[i] == 92 {
                        i += 1
                        if i >= n { break }
                    }
                    text.append(s[i])
                    i += 1
                } while i < n && atomOK(s[i])
                i -= 1
                // An atom holding bytes no atom may carry is written back quoted.
                var kind = Token822.Kind.atom
                for ch in text where ch < 32 || ch > 126 || ch == 41 || ch == 93 || ch == 92 {
                    kind = .quote
                    break
                }
                out.append(Token822(kind, text))
            }
            i += 1
        }
        return out
    }

    /// The address as an envelope wants it: contents without quoting, comments dropped.
    public static func unquote(_ tokens: [Token822]) -> [UInt8] {
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

    private static func needSpace(_ a: Token822.Kind?, _ b: Token822.Kind) -> Bool {
        guard let a else { return false }
        if a == .colon || a == .comma || b == .left { return true }
        let aw = a == .atom || a == .literal || a == .quote || a == .comment
        let bw = b == .atom || b == .literal || b == .quote || b == .comment
        return aw && bw
    }

    /// Writes tokens back as a header field ending in "\n". After each comma
    /// qmail puts a tentative line break and drops it again when the line up
    /// to the next comma (break included) still fits in `lineLength`; the
    /// decisions are made on the unbroken text, then the breaks kept are
    /// inserted, so the work stays linear in the field's size.
    public static func unparse(_ tokens: [Token822], lineLength: Int = 80) -> [UInt8] {
        var text: [UInt8] = []
        var kept: [Int] = []          // offsets in `text` where "\n " goes
        var lineStart = 0
        var firstLine = true
        var pendingBreak: Int? = nil

        func breakPoint() {
            let x = text.count
            if let p = pendingBreak {
                // Bytes qmail counts on this line: the leading space of the
                // break that began it, the text, and the pending "\n ".
                let length = (x - lineStart) + 2 + (firstLine ? 0 : 1)
                if lineLength != 0 && length > lineLength {
                    kept.append(p)
                    lineStart = p
                    firstLine = false
                }
            }
            pendingBreak = x
        }

        var last: Token822.Kind? = nil
        for t in tokens {
            if needSpace(last, t.kind) { text.append(32) }
            last = t.kind
            switch t.kind {
            case .comma: text.append(44); breakPoint()
            case .at: text.append(64)
            case .dot: text.append(46)
            case .left: text.append(60)
            case .right: text.append(62)
            case .semi: text.append(59)
            case .colon: text.append(58)
            case .atom, .quote, .literal, .comment:
                let (open, close): (UInt8?, UInt8?) = {
                    switch t.kind {
                    case .quote: return (34, 34)
                    case .literal: return (91, 93)
                    case .comment: return (40, 41)
                    default: return (nil, nil)
                    }
                }()
                if let open { text.append(open) }
                for ch in t.text {
                    switch ch {
                    case 34, 91, 93, 40, 41, 92, 13, 10: text.append(92)
                    default: break
                    }
                    text.append(ch)
                }
                if let close { text.append(close) }
            }
        }
        breakPoint()
        var out: [UInt8] = []
        out.reserveCapacity(text.count + 2 * kept.count + 1)
        var from = 0
        for k in kept {
            out += text[from..<k]
            out.append(10)
            out.append(32)
            from = k
        }
        out += text[from...]
        out.append(10)
        return out
    }

    /// Walks the address list of a header field (tokens after "Name:"),
    /// calling `rewrite` on each address (in reading order) and returning
    /// the field with the rewritten addresses. nil on a syntax error.
    /// A missing comma between two addresses is inserted.
    public static func addressList(_ ta: [Token822], rewrite: (inout [Token822]) -> Void) -> [Token822]? {
        var outRev: [Token822] = []     // output, built right to left
        var addrRev: [Token822] = []    // current address, right to left
        var inGroup = false
        var wordOK = true
        let beginning = 2
        var t = ta.count - 1

        func gotAddress() {
            var addr = Array(addrRev.reversed())
            rewrite(&addr)
            outRev += addr.reversed()
            addrRev.removeAll(keepingCapacity: true)
        }
        func flush() { if !addrRev.isEmpty { gotAddress() } }
        func flushComma() { if !addrRev.isEmpty { gotAddress(); outRev.append(Token822(.comma)) } }

        while t >= beginning {
            let tok = ta[t]
            switch tok.kind {
            case .semi:
                flushComma()
                if inGroup { return nil }
                inGroup = true
                wordOK = true
                outRev.append(tok); t -= 1
            case .colon:
                flush()
                if !inGroup { return nil }
                inGroup = false
                while t >= beginning && ta[t].kind != .comma { outRev.append(ta[t]); t -= 1 }
                if t >= beginning { outRev.append(ta[t]); t -= 1 }
                wordOK = true
            case .right:
                flushComma()
                outRev.append(tok); t -= 1
                while t >= beginning && ta[t].kind != .left { addrRev.append(ta[t]); t -= 1 }
                gotAddress()  // even when empty: <> is an address
                if t < beginning { return nil }
                outRev.append(ta[t]); t -= 1
                while t >= beginning {
                    let k = ta[t].kind
                    guard k == .comment || k == .atom || k == .quote || k == .at || k == .dot else { break }
                    outRev.append(ta[t]); t -= 1
                }
                wordOK = false
            case .atom, .quote, .literal:
                if !wordOK { flushComma() }
                wordOK = false
                addrRev.append(tok); t -= 1
            case .comment:
                // A comment is lexically a space: it does not separate words.
                outRev.append(tok); t -= 1
            case .comma:
                flush()
                wordOK = true
                outRev.append(tok); t -= 1
            default:
                wordOK = true
                addrRev.append(tok); t -= 1
            }
        }
        flush()
        var i = min(t + 1, ta.count)
        while i > 0 { i -= 1; outRev.append(ta[i]) }
        return outRev.reversed()
    }
}
