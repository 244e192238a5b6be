// Where the hosts of a cluster (issue 22) are: control/clusterhosts lines
// "host:address[:port]" (IPv6 in brackets), else the host's A/AAAA
// records. The port a line names is its QMTP port (VDelivery's
// ClusterRoute); qmail-pop3proxy takes only the address. Every failure is
// temporary: a directory naming a host this one cannot find is a
// misconfiguration, not the client's or the sender's fault.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum ClusterHosts {
    /// The addresses of `host` (a lower-case name, as the directory holds
    /// it), each with the port its clusterhosts line names (nil: none).
    public static func addresses(of host: String, control: Control) throws -> [(IPAddress, Int?)] {
        for line in try control.list("clusterhosts") {
            guard let c = line.firstIndex(of: Ascii.colon), name(Array(line[..<c])) == host else { continue }
            guard let route = parseAddress(Array(line[(c + 1)...])) else {
                throw MailFailure.temporary("control/clusterhosts: bad line for \(host)")
            }
            return [route]
        }
        do {
            let ips = try DNSResolver.system().ips(Array(host.utf8))
            if ips.isEmpty { throw MailFailure.temporary("cluster host \(host) has no address") }
            return ips.map { ($0, nil) }
        } catch let f as MailFailure { throw f } catch {
            throw MailFailure.temporary("unable to find the address of cluster host \(host): \(error)")
        }
    }

    /// Every address control/clusterhosts names (unmapped), whatever its
    /// host; a malformed line names none. No file: none.
    public static func listedAddresses(control: Control) -> Set<IPAddress> {
        var set = Set<IPAddress>()
        for line in (try? control.list("clusterhosts")) ?? [] {
            guard let c = line.firstIndex(of: Ascii.colon),
                  let (ip, _) = parseAddress(Array(line[(c + 1)...])) else { continue }
            set.insert(ip.unmapped)
        }
        return set
    }

    /// A clusterhosts name, trimmed and lower-cased.
    static func name(_ raw: [UInt8]) -> String {
        raw.filter { $0 != Ascii.space && $0 != Ascii.tab && $0 != Ascii.cr }.map(Ascii.lower).string
    }

    /// "192.0.2.1", "192.0.2.1:2209", "[2001:db8::1]:2209".
    public static func parseAddress(_ v: [UInt8]) -> (IPAddress, Int?)? {
        var addr = v
        var port: [UInt8] = []
        if v.first == 91 {
            guard let close = v.firstIndex(of: 93) else { return nil }
            addr = Array(v[1..<close])
            let rest = Array(v[(close + 1)...])
            if !rest.isEmpty { guard rest.first == Ascii.colon else { return nil }; port = Array(rest.dropFirst()) }
        } else if let c = v.firstIndex(of: Ascii.colon) {
            addr = Array(v[..<c])
            port = Array(v[(c + 1)...])
        }
        guard let ip = IPAddress(addr.string) else { return nil }
        if port.isEmpty { return (ip, nil) }
        guard let p = Decimal.parse(port), (1...65535).contains(p) else { return nil }
        return (ip, p)
    }
}
