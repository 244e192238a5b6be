// qmail-send's recipient rewriting: add envnoathost to a bare local part,
// apply the percent hack, then decide local (locals, or a virtualdomains
// entry with a non-empty prepend, which turns user@domain into
// prepend-user@domain) or remote.

import QmailCore

public struct Router {
    public var locals: DomainMap<Void>
    public var virtualDomains: DomainMap<[UInt8]>
    public var percentHack: DomainMap<Void>
    public var envNoAtHost: [UInt8]

    public init(locals: [[UInt8]], virtualDomains: [[UInt8]], percentHack: [[UInt8]], envNoAtHost: [UInt8]) {
        self.locals = DomainMap(lines: locals)
        self.virtualDomains = DomainMap(colonLines: virtualDomains)
        self.percentHack = DomainMap(lines: percentHack)
        self.envNoAtHost = envNoAtHost
    }

    /// Reads the controls qmail-send uses for routing. `me` is required.
    public static func load(_ control: Control) throws -> Router {
        let envnoathost = try control.lineWithDefault("envnoathost") ?? Array("envnoathost".utf8)
        return Router(locals: try control.list("locals"),
                      virtualDomains: try control.list("virtualdomains"),
                      percentHack: try control.list("percenthack"),
                      envNoAtHost: envnoathost)
    }

    /// The channel and the address as written to the channel file.
    public func route(_ recipient: [UInt8]) -> (DeliveryChannel, [UInt8]) {
        var addr = recipient
        var at = addr.lastIndex(of: Ascii.at) ?? addr.count
        if at == addr.count {
            addr += [Ascii.at] + envNoAtHost
        }
        // The percent hack: user%host@relay becomes user@host while relay is listed.
        while percentHack.exact(Array(addr[(at + 1)...])) != nil {
            guard let p = addr[0..<at].lastIndex(of: Ascii.percent) else { break }
            addr.removeSubrange(at...)
            addr[p] = Ascii.at
            at = p
        }
        let domain = Array(addr[(at + 1)...])
        if locals.exact(domain) != nil { return (.local, addr) }
        if let (prepend, _) = virtualDomains.matchAddress(addr) {
            if prepend.isEmpty { return (.remote, addr) }
            return (.local, prepend + [Ascii.minus] + addr)
        }
        return (.remote, addr)
    }
}
