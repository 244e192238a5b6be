// vmoddomlimits: shows, sets or deletes a domain's limits
// (DIR/.qmailadmin-limits, DomainLimits.swift) with vpopmail's option
// letters. Only the limits this host enforces are taken; vpopmail's other
// options are refused by name, so that no script believes a limit holds
// that nothing here keeps.
import QmailCore
import UserDirectory

extension Admin {
    static let domLimitsUsage = "vmoddomlimits [-S | -D | [-P count] [-A count] [-q quota] [-m count]] domain"

    /// vpopmail's letters this host has no limit for, and why.
    static let unkeptLimits: [Character: String] = [
        "Q": "a quota for the whole domain", "M": "a message count for the whole domain",
        "F": "a count of forwards (forwards are aliases here: -A limits them)",
        "R": "a count of autoresponders", "L": "a count of mailing lists",
        "g": "domain-wide account flags (vmoduser sets them per mailbox)",
    ]

    func modifyDomainLimits(_ args: [String]) throws -> [String] {
        let usage = Admin.domLimitsUsage
        let o = try Options(args, flags: "SDd", values: "PAqmQMFRLgpafrluoxz", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        if o.flags.contains("d") {
            throw AdminError.refused("-d: there is no vlimits.default here; a domain without limits has none")
        }
        for (letter, what) in Admin.unkeptLimits.sorted(by: { $0.key < $1.key }) where o.values[letter] != nil {
            throw AdminError.refused("-\(letter): \(what) is not kept here; nothing was written")
        }
        if let p = "pafrluoxz".first(where: { o.values[$0] != nil }) {
            throw AdminError.refused("-\(p): qmailadmin's permission flags are not kept here; nothing was written")
        }
        let setting = "PAqm".contains { o.values[$0] != nil }
        if o.flags.contains("S") && o.flags.contains("D") || (o.flags.contains("S") || o.flags.contains("D")) && setting {
            throw AdminError.usage(usage)
        }
        let name = o.operands[0]
        if o.flags.contains("D") {
            try setLimits(name, DomainLimits())
            return []
        }
        if !setting {
            guard o.flags.contains("S") else { throw AdminError.usage(usage) }
            let d = try domain(name)
            print(Admin.showLimits(d.name.string, limits(d)), terminator: "")
            return []
        }
        let mailboxes = try o.values["P"].map { try Admin.limitCount($0, "-P") }
        let aliases = try o.values["A"].map { try Admin.limitCount($0, "-A") }
        let messages = try o.values["m"].map { try Admin.limitCount($0, "-m") }
        let bytes = try o.values["q"].map { v -> Quota in
            if v == "0" || v == "-1" { return .unlimited }
            return try parseQuota(v)
        }
        try updateLimits(name) { l in
            if let n = mailboxes { l.maxMailboxes = n }
            if let n = aliases { l.maxAliases = n }
            var q = l.defaultQuota ?? Quota()
            if let b = bytes { q = Quota(bytes: b.bytes, count: b.count ?? q.count) }
            if let c = messages { q.count = c == 0 ? nil : c }
            l.defaultQuota = q.isUnlimited ? nil : q
        }
        return []
    }

    /// A count option's value: -1 for no limit (vpopmail's), else 0 or more.
    static func limitCount(_ v: String, _ option: String) throws -> Int? {
        if v == "-1" { return nil }
        guard let n = Decimal.parse(Array(v.utf8)) else { throw AdminError.refused("\(option) wants a count, or -1 for no limit") }
        return n
    }

    /// -S's report, in vpopmail's wording and numbers (-1: no limit; 0:
    /// no default quota or message count).
    static func showLimits(_ domain: String, _ l: DomainLimits) -> String {
        """
        Domain: \(domain)
        --
        Max Pop Accounts: \(l.maxMailboxes ?? -1)
        Max Aliases: \(l.maxAliases ?? -1)
        Default User Quota: \(l.defaultQuota?.bytes ?? 0) bytes
        Default Max Messages per User: \(l.defaultQuota?.count ?? 0)

        """
    }
}
