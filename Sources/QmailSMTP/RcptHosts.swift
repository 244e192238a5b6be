// Which recipient domains this host accepts mail for: control/rcpthosts plus
// control/morercpthosts.cdb, with qmail's rules (case-insensitive, an entry
// ".example.com" covers every host below it, an address without '@' is
// accepted). Also the relay-trick check that qmail leaves to later stages:
// "user%other@ours", "other!user@ours", "user@other@ours" name another host
// inside the local part; without relay rights such an address is refused
// unless that host is accepted too.
import QmailCore

public final class RcptHosts {
    private let map: DomainMap<Void>
    private let more: CdbReader?
    /// False when neither file exists: qmail then accepts every domain.
    public let configured: Bool

    public init(lines: [[UInt8]]?, more: CdbReader?) {
        self.map = DomainMap(lines: lines ?? [])
        self.more = more
        self.configured = lines != nil || more != nil
    }

    public convenience init(control: Control) throws {
        let lines: [[UInt8]]? = Sys.exists(control.path("rcpthosts")) ? try control.list("rcpthosts") : nil
        let cdb = try CdbReader.open(control.path("morercpthosts.cdb"))
        self.init(lines: lines, more: cdb)
    }

    /// Whether mail to `host` is accepted (the part after the last '@').
    public func acceptsHost(_ host: [UInt8]) throws -> Bool {
        if !configured { return true }
        if map.containsHost(host) { return true }
        guard let more else { return false }
        let h = host.lowercasedASCII()
        var i = 0
        while i < h.count {
            if i == 0 || h[i] == Ascii.dot {
                if try more.find(Array(h[i...])) != nil { return true }
            }
            i += 1
        }
        return false
    }

    /// qmail's addrallowed: an address without '@' is allowed.
    public func accepts(_ address: [UInt8]) throws -> Bool {
        let (_, domain) = Address.split(address)
        guard let domain else { return true }
        return try acceptsHost(domain)
    }

    /// The host named inside the local part by relay tricks, if any:
    /// "u@other" (quoted '@'), "u%other", "other!u".
    public static func routedHost(local: [UInt8]) -> [UInt8]? {
        if let at = local.lastIndex(of: Ascii.at) { return Array(local[(at + 1)...]) }
        if let pc = local.lastIndex(of: Ascii.percent) { return Array(local[(pc + 1)...]) }
        if let bang = local.firstIndex(of: 33) { return Array(local[..<bang]) }
        return nil
    }

    /// accepts(), plus the relay-trick check.
    public func acceptsWithoutRelay(_ address: [UInt8]) throws -> Bool {
        guard try accepts(address) else { return false }
        let (local, domain) = Address.split(address)
        var hostInside: [UInt8]? = nil
        if domain == nil {
            if let bang = local.firstIndex(of: 33) { hostInside = Array(local[..<bang]) }
            else if let pc = local.lastIndex(of: Ascii.percent) { hostInside = Array(local[(pc + 1)...]) }
        } else {
            hostInside = RcptHosts.routedHost(local: local)
        }
        guard let h = hostInside else { return true }
        if h.isEmpty { return false }
        return try acceptsHost(h)
    }
}

/// control/badmailfrom: whole addresses and "@domain" lines, case-insensitive.
public struct BadMailFrom {
    private let set: Set<[UInt8]>

    public init(lines: [[UInt8]]) {
        set = Set(lines.map { $0.lowercasedASCII() })
    }

    public func matches(_ address: [UInt8]) -> Bool {
        if set.isEmpty { return false }
        let a = address.lowercasedASCII()
        if set.contains(a) { return true }
        if let at = a.lastIndex(of: Ascii.at), set.contains(Array(a[at...])) { return true }
        return false
    }
}
