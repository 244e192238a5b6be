// Walks an RFC 822 address list the way djb's newaliases, newinclude and
// dot-forward do: from right to left (address lists are easy to parse that
// way), so the addresses of one line arrive last-first. Colons are not group
// syntax here; newaliases and newinclude recognise ":include:" before a
// file name, dot-forward ignores colons altogether.

/// One address or include found by the walk, as a range of tokens (no
/// copy of its text). In an angle-bracket address every token in the range
/// counts; elsewhere the walk never took semicolons, colons and comments,
/// so the text skips them.
public struct AddressItem: Sendable {
    public var isInclude: Bool
    public var start: Int
    public var end: Int
    public var angle: Bool
    /// Whether an '@' token is part of the address.
    public var hasAt: Bool
}

extension Tokens {
    /// The unquoted text of `item` into `out` (replacing its contents).
    public func text(of item: AddressItem, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        chars.withUnsafeBufferPointer { c in
            for i in item.start..<item.end {
                let t = list[i]
                switch t.kind {
                case .comma: out.append(44)
                case .at: out.append(64)
                case .dot: out.append(46)
                case .left: out.append(60)
                case .right: out.append(62)
                case .semi: if item.angle { out.append(59) }
                case .colon: if item.angle { out.append(58) }
                case .atom, .quote: out.append(contentsOf: UnsafeBufferPointer(rebasing: c[t.start..<t.end]))
                case .literal:
                    out.append(91)
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: c[t.start..<t.end]))
                    out.append(93)
                case .comment: break
                }
            }
        }
    }

    public func text(of item: AddressItem) -> [UInt8] {
        var out: [UInt8] = []
        text(of: item, into: &out)
        return out
    }
}

public enum AddressList {
    /// The addresses and includes of `tokens`, right to left, and whether
    /// the walk stopped at an unbalanced '>' (a syntax error, to be
    /// reported after the items found before it have been handled, as djb's
    /// tools do).
    public static func walk(_ tokens: Tokens, includes: Bool, into items: inout [AddressItem]) -> Bool {
        items.removeAll(keepingCapacity: true)
        let toks = tokens.list
        // The current address: the tokens taken so far span low..<high.
        var low = 0, high = 0
        var taken = false
        var hasAt = false
        var wordOK = true

        @inline(__always) func take(_ i: Int) {
            if !taken { high = i + 1; taken = true; hasAt = false }
            low = i
            if toks[i].kind == .at { hasAt = true }
        }
        @inline(__always) func flush(include: Bool = false) {
            if taken {
                items.append(AddressItem(isInclude: include, start: low, end: high, angle: false, hasAt: hasAt))
            } else {
                items.append(AddressItem(isInclude: include, start: 0, end: 0, angle: false, hasAt: false))
            }
            taken = false
        }

        var t = toks.count
        while t > 0 {
            t -= 1
            switch toks[t].kind {
            case .semi, .comment:
                break
            case .colon:
                if includes, t >= 2, toks[t - 2].kind == .colon, toks[t - 1].kind == .atom,
                   tokens.chars[toks[t - 1].start..<toks[t - 1].end].elementsEqual("include".utf8) {
                    flush(include: true)
                    t -= 2
                }
            case .right:
                if taken { flush() }
                let right = t
                while t > 0 && toks[t - 1].kind != .left { t -= 1 }
                var at = false
                for i in t..<right where toks[i].kind == .at { at = true; break }
                items.append(AddressItem(isInclude: false, start: t, end: right, angle: true, hasAt: at)) // even "<>"
                if t <= 0 { return true }
                t -= 1
                // Skip the phrase before '<': it is a display name.
                while t > 0 {
                    let k = toks[t - 1].kind
                    if k == .comment || k == .atom || k == .quote || k == .at || k == .dot { t -= 1 } else { break }
                }
                wordOK = false
            case .atom, .quote, .literal:
                if !wordOK && taken { flush() }
                wordOK = false
                take(t)
            case .comma:
                if taken { flush() }
                wordOK = true
            case .at, .dot, .left:
                wordOK = true
                take(t)
            }
        }
        if taken { flush() }
        return false
    }
}

/// The qualification rules djb's tools share for addresses without a fully
/// qualified domain (qmail-header(5)): add @defaulthost when there is no
/// '@', turn a trailing '+' into '.' + plusdomain, and add '.' +
/// defaultdomain when the domain has no dot.
public struct Qualifier: Sendable {
    public var me: [UInt8]
    public var defaultHost: [UInt8]
    public var defaultDomain: [UInt8]
    public var plusDomain: [UInt8]

    public init(me: [UInt8], defaultHost: [UInt8], defaultDomain: [UInt8], plusDomain: [UInt8]) {
        self.me = me
        self.defaultHost = defaultHost
        self.defaultDomain = defaultDomain
        self.plusDomain = plusDomain
    }

    /// Reads control/me, defaultdomain, defaulthost and plusdomain; each of
    /// the last three defaults to me, and me to the literal "me" (as djb's
    /// tools do). An unreadable control file is a temporary failure.
    public static func load(controlDirectory: String) throws -> Qualifier {
        let c = Control(directory: controlDirectory)
        do {
            let me = try c.line("me") ?? Array("me".utf8)
            return Qualifier(me: me,
                             defaultHost: try c.line("defaulthost") ?? me,
                             defaultDomain: try c.line("defaultdomain") ?? me,
                             plusDomain: try c.line("plusdomain") ?? me)
        } catch {
            throw ForwardFatal.temporary("unable to read controls: \(error)")
        }
    }

    /// The '+' and no-dot rules, for an address that already has its '@'.
    public func finishDomain(_ a: inout [UInt8]) {
        if a.last == Ascii.plus {
            a[a.count - 1] = Ascii.dot
            a += plusDomain
        }
        let at = a.lastIndex(of: Ascii.at) ?? 0
        if !a[at...].contains(Ascii.dot) {
            a.append(Ascii.dot)
            a += defaultDomain
        }
    }

    /// dot-forward's and newinclude's form: "@defaulthost" when there is no
    /// '@' token, then the '+' and no-dot rules.
    public func qualify(_ text: [UInt8], hasAt: Bool) -> [UInt8] {
        var a = text
        if !hasAt {
            a.append(Ascii.at)
            a += defaultHost
        }
        finishDomain(&a)
        return a
    }
}

import QmailCore
