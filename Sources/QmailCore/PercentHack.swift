// qmail-send's rewriting of a recipient before it picks a channel: a bare
// local part gets "@envnoathost", then, as long as the domain is listed in
// control/percenthack, "user%host@domain" becomes "user@host". qmail-send
// routes what comes out; qmail-smtpd judges it, since that is where the
// mail will go (a chain "u%far%ours@ours" must not get past rcpthosts).

public struct PercentHack {
    public var domains: DomainMap<Void>
    public var envNoAtHost: [UInt8]

    public init(domains: [[UInt8]], envNoAtHost: [UInt8]) {
        self.domains = DomainMap(lines: domains)
        self.envNoAtHost = envNoAtHost
    }

    /// control/percenthack and control/envnoathost (default: me).
    public static func load(_ control: Control) throws -> PercentHack {
        try load(control, domains: try control.list("percenthack"))
    }

    /// As load(), but nil (and envnoathost unread) when percenthack lists nothing.
    public static func loadIfListed(_ control: Control) throws -> PercentHack? {
        let domains = try control.list("percenthack")
        return domains.isEmpty ? nil : try load(control, domains: domains)
    }

    private static func load(_ control: Control, domains: [[UInt8]]) throws -> PercentHack {
        let envnoathost = try control.lineWithDefault("envnoathost") ?? Array("envnoathost".utf8)
        return PercentHack(domains: domains, envNoAtHost: envnoathost)
    }

    /// The address qmail-send delivers to, the index of its '@', and how
    /// many '%' steps were taken.
    public func rewrite(_ recipient: [UInt8]) -> (address: [UInt8], at: Int, steps: Int) {
        var addr = recipient
        var at = addr.lastIndex(of: Ascii.at) ?? addr.count
        if at == addr.count {
            addr += [Ascii.at] + envNoAtHost
        }
        var steps = 0
        // Exact entries only: qmail-send looks percenthack up with constmap.
        while domains.exact(Array(addr[(at + 1)...])) != nil {
            guard let p = addr[0..<at].lastIndex(of: Ascii.percent) else { break }
            addr.removeSubrange(at...)
            addr[p] = Ascii.at
            at = p
            steps += 1
        }
        return (addr, at, steps)
    }
}
