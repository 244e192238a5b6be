// qmail-send's recipient routing: rewrite as PercentHack says (envnoathost,
// the percent hack; qmail-smtpd's relay check uses the same code), then
// decide local (locals, or a virtualdomains entry with a non-empty prepend,
// which turns user@domain into prepend-user@domain) or remote.

import QmailCore

public struct Router {
    public var locals: DomainMap<Void>
    public var virtualDomains: DomainMap<[UInt8]>
    public var percentHack: PercentHack

    public init(locals: [[UInt8]], virtualDomains: [[UInt8]], percentHack: [[UInt8]], envNoAtHost: [UInt8]) {
        self.locals = DomainMap(lines: locals)
        self.virtualDomains = DomainMap(colonLines: virtualDomains)
        self.percentHack = PercentHack(domains: percentHack, envNoAtHost: envNoAtHost)
    }

    /// Reads the controls qmail-send uses for routing. `me` is required.
    public static func load(_ control: Control) throws -> Router {
        var r = Router(locals: try control.list("locals"), virtualDomains: try control.list("virtualdomains"),
                       percentHack: [], envNoAtHost: [])
        r.percentHack = try PercentHack.load(control)
        return r
    }

    /// The channel and the address as written to the channel file.
    public func route(_ recipient: [UInt8]) -> (DeliveryChannel, [UInt8]) {
        let (addr, at, _) = percentHack.rewrite(recipient)
        let domain = Array(addr[(at + 1)...])
        if locals.exact(domain) != nil { return (.local, addr) }
        if let (prepend, _) = virtualDomains.matchAddress(addr) {
            if prepend.isEmpty { return (.remote, addr) }
            return (.local, prepend + [Ascii.minus] + addr)
        }
        return (.remote, addr)
    }
}
