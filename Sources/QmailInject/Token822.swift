// RFC 822 header tokens the way qmail-inject sees them: QmailCore's
// Token822Scanner splits a field into atoms, quoted strings, domain
// literals, comments and punctuation, each becoming a Token822 that owns
// its text (so that rewriting can edit and insert tokens); address lists
// are walked right to left (that is where they are unambiguous) and each
// address is handed to a rewriting callback; the result is written back
// with qmail's spacing and its folding after commas.
import QmailCore

public struct Token822: Equatable, Sendable {
    /// The kinds QmailCore's Token822Scanner finds.
    public typealias Kind = TokenKind
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
    /// Splits `s` into tokens (Token822Scanner's, each with its own text);
    /// nil on unbalanced brackets, quotes or comments.
    public static func parse(_ s: [UInt8]) -> [Token822]? {
        guard let scanned = Token822Scanner.parse(s) else { return nil }
        return scanned.list.map { t in
            Token822(t.kind, t.start == t.end ? [] : Array(scanned.text(t)))
        }
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
