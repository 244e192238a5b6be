// Per-domain limits, kept as vpopmail keeps them: DIR/.qmailadmin-limits,
// "key: value" lines (maxpopaccounts, maxaliases, default_quota,
// default_maxmsgcount; -1 or no line means no limit, and vpopmail's 0
// default quota or message count means none). vadduser and valias enforce them when adding,
// so the web administration and the commands refuse the same things;
// what exists already is never removed by a lower limit.
import QmailCore
import UserDirectory

public struct DomainLimits: Equatable {
    /// Mailboxes the domain may hold (postmaster included); nil: no limit.
    public var maxMailboxes: Int?
    /// Alias names the domain may hold; nil: no limit.
    public var maxAliases: Int?
    /// The quota of a new mailbox given none of its own.
    public var defaultQuota: Quota?

    public init(maxMailboxes: Int? = nil, maxAliases: Int? = nil, defaultQuota: Quota? = nil) {
        self.maxMailboxes = maxMailboxes
        self.maxAliases = maxAliases
        self.defaultQuota = defaultQuota
    }

    public static let fileName = ".qmailadmin-limits"

    public var isEmpty: Bool { self == DomainLimits() }

    /// Reads the limits; lines it does not know are left to whoever wrote them.
    static func parse(_ data: [UInt8]) -> DomainLimits {
        var l = DomainLimits()
        var quota: Quota? = nil, messages: Int? = nil
        for line in Control.parseList(data) {
            guard let colon = line.firstIndex(of: Ascii.colon) else { continue }
            let key = Array(line[..<colon]).string.trimmingCharacters(in: " \t").lowercased()
            let value = Array(Array(line[(colon + 1)...]).string.trimmingCharacters(in: " \t").utf8)
            switch key {
            case "maxpopaccounts": l.maxMailboxes = Decimal.parse(value)
            case "maxaliases": l.maxAliases = Decimal.parse(value)
            case "default_quota": quota = value.isEmpty || value == Array("0".utf8) ? nil : Quota.parse(value)
            case "default_maxmsgcount": messages = Decimal.parse(value).flatMap { $0 > 0 ? $0 : nil }
            default: continue
            }
        }
        // vpopmail keeps the two halves of a Maildir++ quota on two lines
        var q = quota ?? Quota()
        if q.count == nil { q.count = messages }
        l.defaultQuota = q.isUnlimited ? nil : q
        return l
    }

    var text: [UInt8] {
        var s = ""
        if let n = maxMailboxes { s += "maxpopaccounts: \(n)\n" }
        if let n = maxAliases { s += "maxaliases: \(n)\n" }
        // vpopmail's two lines (its readers take a number each)
        if let b = defaultQuota?.bytes { s += "default_quota: \(b)\n" }
        if let c = defaultQuota?.count { s += "default_maxmsgcount: \(c)\n" }
        return Array(s.utf8)
    }

    /// What vdominfo shows.
    public var summary: String {
        "mailboxes \(maxMailboxes.map(String.init) ?? "unlimited"), aliases \(maxAliases.map(String.init) ?? "unlimited"), "
            + "default quota \(defaultQuota?.text ?? "none")"
    }
}

extension Admin {
    public func limits(_ d: VDomain) -> DomainLimits {
        (try? FileIO.read(d.dir + "/" + DomainLimits.fileName)).flatMap { $0 }.map(DomainLimits.parse) ?? DomainLimits()
    }

    /// Sets a hosted domain's limits (none at all removes the file).
    public func setLimits(_ domain: String, _ l: DomainLimits) throws {
        try updateLimits(domain) { $0 = l }
    }

    /// Reads, changes and writes back a hosted domain's limits under the
    /// admin lock (none left removes the file); returns what was written.
    @discardableResult
    func updateLimits(_ domain: String, _ change: (inout DomainLimits) -> Void) throws -> DomainLimits {
        try store.withLock {
            let d = try hostedDomain(try Names.domain(Array(domain.utf8)))
            let path = d.dir + "/" + DomainLimits.fileName
            var l = limits(d)
            change(&l)
            if l.isEmpty {
                if Sys.exists(path) { try Sys.unlink(path) }
            } else {
                try FileStore.writeAtomic(path, l.text, mode: 0o644, owner: (d.uid, d.gid))
            }
            return l
        }
    }
}
