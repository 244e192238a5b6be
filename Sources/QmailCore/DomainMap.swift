// Host and domain tables with qmail's wildcard rule: an entry starting with
// a dot (".example.com") matches every host ending in it, and lookups are
// case-insensitive. Used for rcpthosts, locals, percenthack, smtproutes and
// virtualdomains.

public struct DomainMap<Value> {
    private var table: [[UInt8]: Value] = [:]

    public init() {}

    /// Keys are stored lowercased; the first entry for a key wins, as in qmail.
    public mutating func insert(_ key: [UInt8], _ value: Value) {
        let k = key.lowercasedASCII()
        if table[k] == nil { table[k] = value }
    }

    public var isEmpty: Bool { table.isEmpty }
    public var count: Int { table.count }

    public func exact(_ key: [UInt8]) -> Value? {
        table[key.lowercasedASCII()]
    }

    /// The host itself, then each suffix starting at a dot, longest first.
    public func matchHost(_ host: [UInt8]) -> Value? {
        let h = host.lowercasedASCII()
        if let v = table[h] { return v }
        var i = 0
        while i < h.count {
            if h[i] == Ascii.dot, let v = table[Array(h[i...])] { return v }
            i += 1
        }
        return nil
    }

    /// qmail-send's virtualdomains order for "local@domain": the whole
    /// address, the domain, each ".suffix" of the domain, then the empty
    /// entry. Returns the value and the key length matched (qmail needs to
    /// know whether the whole address matched).
    public func matchAddress(_ address: [UInt8]) -> (value: Value, key: [UInt8])? {
        let a = address.lowercasedASCII()
        let at = a.lastIndex(of: Ascii.at) ?? -1
        var i = 0
        while i <= a.count {
            if i == 0 || i == at + 1 || i == a.count || (i > at && a[i] == Ascii.dot) {
                let key = Array(a[i...])
                if let v = table[key] { return (v, key) }
            }
            i += 1
        }
        return nil
    }
}

extension DomainMap where Value == Void {
    /// A set from a list control (rcpthosts, locals, percenthack).
    public init(lines: [[UInt8]]) {
        self.init()
        for l in lines { insert(l, ()) }
    }

    public func containsHost(_ host: [UInt8]) -> Bool { matchHost(host) != nil }
}

extension DomainMap where Value == [UInt8] {
    /// A map from "key:value" lines (virtualdomains, smtproutes). The split is
    /// at the first colon, except that smtproutes-style keys never contain
    /// one, so the first colon is always right.
    public init(colonLines: [[UInt8]]) {
        self.init()
        for l in colonLines {
            guard let c = l.firstIndex(of: Ascii.colon) else { continue }
            insert(Array(l[0..<c]), Array(l[(c + 1)...]))
        }
    }
}
