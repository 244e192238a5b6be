// qmail-inject's address rewriting (qmail-header(5)): source routes are
// dropped, a lone box gets "@defaulthost", a host ending in '+' gets the
// plus domain, a host without dots gets the default domain.

import QmailCore

public struct InjectDomains: Sendable {
    public var defaultHost: [UInt8]
    public var defaultDomain: [UInt8]
    public var plusDomain: [UInt8]
    public var idHost: [UInt8]

    public init(defaultHost: [UInt8], defaultDomain: [UInt8], plusDomain: [UInt8], idHost: [UInt8]) {
        self.defaultHost = defaultHost
        self.defaultDomain = defaultDomain
        self.plusDomain = plusDomain
        self.idHost = idHost
    }

    /// Reads the controls with qmail's defaults (`me`, else the control's
    /// own name) and the QMAILDEFAULTHOST/QMAILDEFAULTDOMAIN/QMAILPLUSDOMAIN/
    /// QMAILIDHOST overrides.
    public static func load(control: Control, environment env: (String) -> String?) throws -> InjectDomains {
        func get(_ name: String, _ variable: String) throws -> [UInt8] {
            if let v = env(variable) { return Array(v.utf8) }
            return try control.lineWithDefault(name) ?? Array(name.utf8)
        }
        return InjectDomains(
            defaultHost: try get("defaulthost", "QMAILDEFAULTHOST"),
            defaultDomain: try get("defaultdomain", "QMAILDEFAULTDOMAIN"),
            plusDomain: try get("plusdomain", "QMAILPLUSDOMAIN"),
            idHost: try get("idhost", "QMAILIDHOST"))
    }
}

public struct AddressRewriter: Sendable {
    let hostTokens: [Token822]     // "@defaulthost"
    let domainTokens: [Token822]   // ".defaultdomain"
    let plusTokens: [Token822]     // ".plusdomain"

    /// Throws (exit 100, with the offending text) when a control value does not parse.
    public init(_ d: InjectDomains) throws(InjectFailure) {
        func tokens(_ prefix: UInt8, _ v: [UInt8]) throws(InjectFailure) -> [Token822] {
            let text = [prefix] + v
            guard let t = Token822Parser.parse(text) else { throw InjectFailure.unparsable(text) }
            return t
        }
        hostTokens = try tokens(Ascii.at, d.defaultHost)
        domainTokens = try tokens(Ascii.dot, d.defaultDomain)
        plusTokens = try tokens(Ascii.dot, d.plusDomain)
    }

    /// Rewrites one address (tokens in reading order) in place.
    public func rewrite(_ a: inout [Token822]) {
        if a.isEmpty { return }  // <> stays <>
        let n = a.count
        // foo@[] is left alone.
        if n >= 2 && a[n - 1].kind == .literal && a[n - 1].text.isEmpty && a[n - 2].kind == .at { return }
        // Source route "@a,@b:box@host": drop everything through the colon.
        if a[0].kind == .at {
            if let colon = a.firstIndex(where: { $0.kind == .colon }) {
                a.removeSubrange(0...colon)
            } else {
                a.removeAll()
            }
        }
        if a.isEmpty { return }
        if a[a.count - 1].kind == .dot { a.removeLast() }  // trailing dot
        if a.isEmpty { return }
        if a[a.count - 1].kind == .at { a.removeLast() }  // trailing @
        if a.isEmpty { return }
        if !a.contains(where: { $0.kind == .at }) { a += hostTokens }
        if var last = a.last, last.kind == .atom, last.text.last == Ascii.plus {
            last.text.removeLast()
            a[a.count - 1] = last
            a += plusTokens
        }
        // Host part: from the last '@' to the end.
        var i = a.count
        while i > 0 {
            let k = a[i - 1].kind
            if k == .at { break }
            if k == .dot || k == .literal { return }
            i -= 1
        }
        a += domainTokens
    }
}
