// A small stub resolver: queries the recursive servers of /etc/resolv.conf
// (or DNSCACHEIP, djbdns' variable) over UDP, retrying over TCP when the
// answer is truncated. Written in Swift rather than through libresolv so
// that failures keep their meaning: NXDOMAIN is permanent (hard), a timeout
// or SERVFAIL is temporary (soft), and the distinction decides between a
// bounce and a retry.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum DNSError: Error, Equatable {
    /// The name does not exist (NXDOMAIN) or cannot be a DNS name.
    case hard
    /// No usable answer now: timeout, SERVFAIL, malformed reply.
    case soft
}

public enum DNSType: UInt16 {
    case a = 1, ns = 2, cname = 5, ptr = 12, mx = 15, txt = 16, aaaa = 28
}

public struct DNSRecord: Equatable {
    public let type: UInt16
    public let owner: [UInt8]
    /// Decoded data: an IP (A/AAAA), a name (PTR/CNAME/MX), or TXT text.
    public var ip: IPAddress? = nil
    public var name: [UInt8]? = nil
    public var preference: Int = 0
    public var text: [UInt8]? = nil
}

public final class DNSResolver {
    public var servers: [IPAddress]
    public var port = 53
    public var timeout = 5
    public var attempts = 2

    public init(servers: [IPAddress]) {
        self.servers = servers
    }

    /// The servers named by DNSCACHEIP, else /etc/resolv.conf, else 127.0.0.1.
    public static func system() -> DNSResolver {
        var list: [IPAddress] = []
        if let env = Sys.getenv("DNSCACHEIP") {
            list = env.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { IPAddress(String($0)) }
        }
        if list.isEmpty, let conf = try? FileIO.read("/etc/resolv.conf", limit: 1 << 20) {
            for line in conf.split(byte: Ascii.lf) {
                let words = line.split(whereSeparator: { $0 == Ascii.space || $0 == Ascii.tab })
                if words.count >= 2, Array(words[0]) == Array("nameserver".utf8),
                   let ip = IPAddress(String(decoding: words[1], as: UTF8.self)) {
                    list.append(ip)
                }
            }
        }
        if list.isEmpty { list = [IPAddress("127.0.0.1")!] }
        return DNSResolver(servers: list)
    }

    // MARK: wire format

    static func encodeName(_ name: [UInt8]) throws -> [UInt8] {
        var n = name
        if n.last == Ascii.dot { n.removeLast() }
        if n.isEmpty { return [0] }
        if n.count > 253 { throw DNSError.hard }
        var out: [UInt8] = []
        for label in n.split(separator: Ascii.dot, omittingEmptySubsequences: false) {
            if label.isEmpty || label.count > 63 { throw DNSError.hard }
            out.append(UInt8(label.count))
            out += label
        }
        out.append(0)
        return out
    }

    static func query(id: UInt16, name: [UInt8], type: UInt16) throws -> [UInt8] {
        var q: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xff), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        q += try encodeName(name)
        q += [UInt8(type >> 8), UInt8(type & 0xff), 0, 1]
        return q
    }

    /// Reads a possibly compressed name at `pos`; returns it and the position after it.
    static func readName(_ m: [UInt8], _ start: Int) throws -> ([UInt8], Int) {
        var pos = start
        var out: [UInt8] = []
        var after = -1
        var jumps = 0
        while true {
            guard pos < m.count else { throw DNSError.soft }
            let len = Int(m[pos])
            if len == 0 { pos += 1; break }
            if len & 0xc0 == 0xc0 {
                guard pos + 1 < m.count, jumps < 64 else { throw DNSError.soft }
                if after < 0 { after = pos + 2 }
                pos = ((len & 0x3f) << 8) | Int(m[pos + 1])
                jumps += 1
                continue
            }
            guard len < 64, pos + 1 + len <= m.count else { throw DNSError.soft }
            if !out.isEmpty { out.append(Ascii.dot) }
            out += m[(pos + 1)..<(pos + 1 + len)]
            pos += 1 + len
            if out.count > 1024 { throw DNSError.soft }
        }
        return (out, after >= 0 ? after : pos)
    }

    static func u16(_ m: [UInt8], _ p: Int) -> Int { Int(m[p]) << 8 | Int(m[p + 1]) }

    /// Parses a reply to our question: the records of `type` owned by `name`
    /// or by the names it is a CNAME for.
    static func parse(_ m: [UInt8], id: UInt16, name: [UInt8], type: UInt16) throws -> (records: [DNSRecord], truncated: Bool) {
        guard m.count >= 12, u16(m, 0) == Int(id), m[2] & 0x80 != 0 else { throw DNSError.soft }
        let truncated = m[2] & 0x02 != 0
        let rcode = m[3] & 0x0f
        if rcode == 3 { throw DNSError.hard }
        if rcode != 0 { throw DNSError.soft }
        if truncated { return ([], true) }
        let qd = u16(m, 4), an = u16(m, 6)
        var pos = 12
        for _ in 0..<qd {
            let (_, p) = try readName(m, pos)
            pos = p + 4
        }
        var owners: Set<[UInt8]> = [name.lowercasedASCII().trimmingTrailing { $0 == Ascii.dot }]
        var all: [DNSRecord] = []
        for _ in 0..<an {
            let (owner, p) = try readName(m, pos)
            guard p + 10 <= m.count else { throw DNSError.soft }
            let rtype = UInt16(u16(m, p))
            let rdlen = u16(m, p + 8)
            let rd = p + 10
            guard rd + rdlen <= m.count else { throw DNSError.soft }
            pos = rd + rdlen
            var r = DNSRecord(type: rtype, owner: owner.lowercasedASCII())
            switch rtype {
            case DNSType.a.rawValue where rdlen == 4, DNSType.aaaa.rawValue where rdlen == 16:
                r.ip = IPAddress(bytes: Array(m[rd..<(rd + rdlen)]))
            case DNSType.cname.rawValue, DNSType.ptr.rawValue:
                r.name = try readName(m, rd).0
            case DNSType.mx.rawValue:
                // Too short for a preference and a name: damaged, as qmail's
                // dns.c treats it (soft), never a null MX (which would bounce).
                guard rdlen >= 3 else { throw DNSError.soft }
                r.preference = u16(m, rd)
                r.name = try readName(m, rd + 2).0
            case DNSType.txt.rawValue:
                var t: [UInt8] = []
                var q = rd
                while q < rd + rdlen {
                    let l = Int(m[q])
                    guard q + 1 + l <= rd + rdlen else { break }
                    t += m[(q + 1)..<(q + 1 + l)]
                    q += 1 + l
                }
                r.text = t
            default:
                break
            }
            all.append(r)
        }
        // Follow CNAME chains inside the answer.
        var changed = true
        while changed {
            changed = false
            for r in all where r.type == DNSType.cname.rawValue && owners.contains(r.owner) {
                if let n = r.name?.lowercasedASCII(), !owners.contains(n) { owners.insert(n); changed = true }
            }
        }
        return (all.filter { $0.type == type && owners.contains($0.owner) }, false)
    }

    // MARK: transport

    private func udp(_ q: [UInt8], server: IPAddress) -> [UInt8]? {
        let fd = socket(server.isV6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { return nil }
        defer { close(fd) }
        let ok = SocketAddress(ip: server, port: UInt16(port)).withSockaddr { Glibc.connect(fd, $0, $1) == 0 }
        guard ok else { return nil }
        guard q.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == q.count else { return nil }
        let deadline = Sys.now() + timeout
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let left = deadline - Sys.now()
            if left <= 0 { return nil }
            guard (try? Poll.wait(fd, events: Int16(POLLIN), timeout: left)) == true else { return nil }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            // Ignore stray datagrams that do not carry our id.
            if n >= 2 && buf[0] == q[0] && buf[1] == q[1] { return Array(buf[0..<n]) }
        }
    }

    private func tcp(_ q: [UInt8], server: IPAddress) -> [UInt8]? {
        guard case .success(let fd) = SocketAddress.connect(server, port: port, timeout: timeout) else { return nil }
        defer { close(fd) }
        let s = FdStream(inFd: fd, outFd: fd)
        let msg = [UInt8(q.count >> 8), UInt8(q.count & 0xff)] + q
        do {
            try msg.withUnsafeBytes { try s.write($0.baseAddress!, $0.count, timeout: timeout) }
            let ch = Channel(stream: s, timeout: timeout, capacity: 4096)
            guard let hi = try ch.byte(), let lo = try ch.byte() else { return nil }
            var out: [UInt8] = []
            guard try ch.read(exactly: Int(hi) << 8 | Int(lo), into: { out += $0 }) else { return nil }
            return out
        } catch {
            return nil
        }
    }

    /// Records of `type` for `name`. Throws .hard for NXDOMAIN, .soft when no
    /// server gave a usable answer. An empty result means "no such records".
    public func lookup(_ name: [UInt8], _ type: DNSType) throws -> [DNSRecord] {
        let id = UInt16.random(in: 0...UInt16.max)  // from getrandom(2): ids must not be guessable
        let q = try DNSResolver.query(id: id, name: name, type: type.rawValue)
        for _ in 0..<attempts {
            for server in servers {
                guard let reply = udp(q, server: server) else { continue }
                do {
                    let r = try DNSResolver.parse(reply, id: id, name: name, type: type.rawValue)
                    if !r.truncated { return r.records }
                    if let t = tcp(q, server: server) {
                        return try DNSResolver.parse(t, id: id, name: name, type: type.rawValue).records
                    }
                } catch DNSError.hard {
                    throw DNSError.hard
                } catch {
                    continue
                }
            }
        }
        throw DNSError.soft
    }

    /// A and AAAA addresses of a host (IPv4 first).
    public func ips(_ host: [UInt8]) throws -> [IPAddress] {
        if let lit = IPAddress(literal: host) { return [lit] }
        // A bare address (smtproutes "example.com:192.0.2.1") needs no lookup.
        if let ip = IPAddress(host.string), host.first != 91 { return [ip] }
        var out: [IPAddress] = []
        var soft = false
        for t in [DNSType.a, DNSType.aaaa] {
            do { out += try lookup(host, t).compactMap { $0.ip } } catch DNSError.hard { throw DNSError.hard } catch { soft = true }
        }
        if out.isEmpty && soft { throw DNSError.soft }
        return out
    }

    public struct MXAddress: Equatable {
        public let preference: Int
        public let ip: IPAddress

        public init(preference: Int, ip: IPAddress) {
            self.preference = preference
            self.ip = ip
        }
    }

    /// qmail's dns_mxip: the addresses to try for mail to `domain`, best
    /// preference first, MX hosts of equal preference in random order. No
    /// MX records: the domain's own addresses with preference 0. A null MX
    /// ("." RFC 7505) gives an empty list.
    public func mxAddresses(_ domain: [UInt8]) throws -> [MXAddress] {
        if domain.first == 91 {
            if let ip = IPAddress(literal: domain) { return [MXAddress(preference: 0, ip: ip)] }
            throw DNSError.hard
        }
        let mx = try lookup(domain, .mx)
        if mx.isEmpty {
            return try ips(domain).map { MXAddress(preference: 0, ip: $0) }
        }
        if mx.count == 1, mx[0].name?.isEmpty ?? true { return [] }
        let shuffled = mx.shuffled().sorted { $0.preference < $1.preference }
        var out: [MXAddress] = []
        var soft = false
        for r in shuffled {
            guard let name = r.name, !name.isEmpty else { continue }
            do {
                for ip in try ips(name) { out.append(MXAddress(preference: r.preference, ip: ip)) }
            } catch DNSError.soft {
                soft = true
            } catch {
                continue
            }
        }
        if out.isEmpty && soft { throw DNSError.soft }
        return out
    }

    /// The PTR name of an address, nil when there is none.
    public func ptr(_ ip: IPAddress) throws -> [UInt8]? {
        try lookup(Array(ip.reverseName.utf8), .ptr).first?.name
    }
}
