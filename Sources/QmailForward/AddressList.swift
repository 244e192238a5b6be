// Walks an RFC 822 address list the way djb's newaliases, newinclude and
// dot-forward do: from right to left (address lists are easy to parse that
// way), so the addresses of one line arrive last-first. Colons are not group
// syntax here; newaliases and newinclude recognise ":include:" before a
// file name, dot-forward ignores colons altogether.

public enum AddressItem {
    /// An address: its unquoted text and whether an '@' token was in it.
    case address(text: [UInt8], hasAt: Bool)
    /// The file name after ":include:".
    case include([UInt8])
}

public enum AddressList {
    /// The addresses and includes of `tokens`, right to left, and whether
    /// the walk stopped at an unbalanced '>' (a syntax error, to be
    /// reported after the items found before it have been handled, as djb's
    /// tools do).
    public static func walk(_ tokens: Tokens, includes: Bool) -> (items: [AddressItem], failed: Bool) {
        let toks = tokens.list
        var items: [AddressItem] = []
        // acc holds the current address's tokens in reverse order.
        var acc: [Token] = []
        acc.reserveCapacity(toks.count)
        var wordOK = true
        var t = toks.count
        while t > 0 {
            t -= 1
            switch toks[t].kind {
            case .semi, .comment:
                break
            case .colon:
                if includes, t >= 2, toks[t - 2].kind == .colon, toks[t - 1].kind == .atom,
                   tokens.text(toks[t - 1]).elementsEqual("include".utf8) {
                    acc.reverse()
                    items.append(.include(tokens.unquote(acc)))
                    acc.removeAll(keepingCapacity: true)
                    t -= 2
                }
            case .right:
                if !acc.isEmpty { items.append(take(&acc, tokens)) }
                while t > 0 && toks[t - 1].kind != .left {
                    t -= 1
                    acc.append(toks[t])
                }
                items.append(take(&acc, tokens)) // even when empty: "<>"
                if t <= 0 { return (items, true) }
                t -= 1
                // Skip the phrase before '<': it is a display name.
                while t > 0 {
                    let k = toks[t - 1].kind
                    if k == .comment || k == .atom || k == .quote || k == .at || k == .dot { t -= 1 } else { break }
                }
                wordOK = false
            case .atom, .quote, .literal:
                if !wordOK && !acc.isEmpty { items.append(take(&acc, tokens)) }
                wordOK = false
                acc.append(toks[t])
            case .comma:
                if !acc.isEmpty { items.append(take(&acc, tokens)) }
                wordOK = true
            case .at, .dot, .left:
                wordOK = true
                acc.append(toks[t])
            }
        }
        if !acc.isEmpty { items.append(take(&acc, tokens)) }
        return (items, false)
    }

    /// The address held (reversed) in `acc`; empties `acc`.
    static func take(_ acc: inout [Token], _ tokens: Tokens) -> AddressItem {
        acc.reverse()
        var hasAt = false
        for t in acc where t.kind == .at { hasAt = true; break }
        let text = tokens.unquote(acc)
        acc.removeAll(keepingCapacity: true)
        return .address(text: text, hasAt: hasAt)
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
            throw ForwardFatal(111, "unable to read controls: \(error)")
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
