// Per-domain limits, kept as vpopmail keeps them: DIR/.qmailadmin-limits,
// "key: value" lines (maxpopaccounts, maxaliases, default_quota; -1 or
// no line means no limit). vadduser and valias enforce them when adding,
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
        for line in Control.parseList(data) {
            guard let colon = line.firstIndex(of: Ascii.colon) else { continue }
            let key = Array(line[..<colon]).string.trimmingCharacters(in: " \t").lowercased()
            let value = Array(Array(line[(colon + 1)...]).string.trimmingCharacters(in: " \t").utf8)
            switch key {
            case "maxpopaccounts": l.maxMailboxes = Decimal.parse(value)
            case "maxaliases": l.maxAliases = Decimal.parse(value)
            case "default_quota": l.defaultQuota = value.isEmpty ? nil : Quota.parse(value)
            default: continue
            }
        }
        return l
    }

    var text: [UInt8] {
        var s = ""
        if let n = maxMailboxes { s += "maxpopaccounts: \(n)\n" }
        if let n = maxAliases { s += "maxaliases: \(n)\n" }
        if let q = defaultQuota { s += "default_quota: \(q.text)\n" }
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
        try store.withLock {
            let d = try hostedDomain(try Names.domain(Array(domain.utf8)))
            let path = d.dir + "/" + DomainLimits.fileName
            if l.isEmpty {
                if Sys.exists(path) { try Sys.unlink(path) }
            } else {
                try FileStore.writeAtomic(path, l.text, mode: 0o644, owner: (d.uid, d.gid))
            }
        }
    }
}
