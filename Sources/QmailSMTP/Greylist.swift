// Greylisting at RCPT: a (client network, sender, recipient) triplet seen for
// the first time is refused with 451; the same triplet retried after
// `delay` seconds passes, and is then remembered for `lifetime` seconds
// from its last pass. Real mail servers retry; most spam engines do not.
//
// The client network is the IPv4 /24 or IPv6 /64, so a sender's pool of
// outgoing servers counts as one. The state is a RecordTable in
// HOME/greylist/triplets (qmaild's directory, made by qmail-setup) shared
// by all qmail-smtpd processes under flock: value = first try, deadline =
// when the triplet is forgotten (a first try is forgotten after `retry`
// seconds without a successful retry). It never grows past its slots.
//
// control/greylist (its presence turns greylisting on) holds lines
// "delay N", "retry N", "lifetime N", "slots N"; control/greylistok lists
// clients never greylisted (addresses, or networks "192.0.2.0/24",
// "2001:db8::/32") and recipient domains that are not ("example.com";
// ".example.com" for its subdomains). Authenticated and RELAYCLIENT
// clients are never greylisted, nor any client whose tcprules set
// NOGREYLIST. When the table cannot be used, mail passes (logged): a
// broken greylist must not stop all mail.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

public struct GreylistPolicy {
    public var delay = 300
    public var retry = 2 * 86400
    public var lifetime = 35 * 86400
    public var slots = 65536
    public var networks: [(IPAddress, Int)] = []
    public var domains: [[UInt8]] = []

    public init() {}

    /// nil when control/greylist does not exist (greylisting off). Throws
    /// when a control file exists but cannot be read.
    public static func load(_ control: Control) throws -> GreylistPolicy? {
        guard let data = try control.raw("greylist") else { return nil }
        var p = GreylistPolicy()
        for line in Control.parseList(data) {
            let f = line.split(whereSeparator: { $0 == Ascii.space || $0 == Ascii.tab })
            guard f.count == 2, let n = Decimal.parse(Array(f[1])), n <= 10 * 365 * 86400 else { continue }
            switch String(decoding: f[0], as: UTF8.self) {
            case "delay": p.delay = n
            case "retry": p.retry = max(n, 1)
            case "lifetime": p.lifetime = max(n, 1)
            case "slots": p.slots = min(max(n, 64), 1 << 24)
            default: continue
            }
        }
        for line in try control.list("greylistok") {
            let text = line.string
            let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
            if let ip = IPAddress(parts[0]) {
                let bits = ip.bytes.count * 8
                let prefix = parts.count == 2 ? (Int(parts[1]) ?? -1) : bits
                guard prefix >= 0 && prefix <= bits else { continue }
                p.networks.append((ip, prefix))
            } else if !line.isEmpty {
                p.domains.append(line.lowercasedASCII())
            }
        }
        return p
    }

    public func whitelists(client: IPAddress) -> Bool {
        let ip = client.unmapped
        return networks.contains { ip.isWithin($0.0, prefix: $0.1) }
    }

    public func whitelists(recipient: [UInt8]) -> Bool {
        guard let at = recipient.lastIndex(of: Ascii.at) else { return false }
        let domain = Array(recipient[(at + 1)...]).lowercasedASCII()
        return domains.contains { d in
            d.first == Ascii.dot ? domain.count > d.count && domain.suffix(d.count).elementsEqual(d) : domain == d
        }
    }
}

public struct Greylist {
    public enum Verdict: Equatable {
        case pass
        /// Refused; the seconds until a retry can pass.
        case wait(Int)
    }

    public let policy: GreylistPolicy
    let table: RecordTable
    let now: () -> Int

    public init(home: QmailHome, policy: GreylistPolicy, now: @escaping () -> Int = Sys.now) {
        self.policy = policy
        self.now = now
        table = RecordTable(directory: home.path + "/greylist", file: "triplets", slots: policy.slots,
                            maxAhead: max(policy.retry, policy.lifetime))
    }

    /// The /24 of an IPv4 client, the /64 of an IPv6 one.
    static func network(_ ip: IPAddress) -> [UInt8] {
        let a = ip.unmapped
        return a.isV6 ? Array(a.bytes[0..<8]) + [6] : Array(a.bytes[0..<3]) + [4]
    }

    /// Judges one triplet and records it; nil when the table cannot be used.
    public func check(client: IPAddress, sender: [UInt8], recipient: [UInt8]) -> Verdict? {
        let key = RecordTable.hash(Greylist.network(client) + [0] + sender.lowercasedASCII() + [0]
                                   + recipient.lowercasedASCII())
        return table.withLocked { fd in
            let t = now()
            let (slot, found) = table.find(fd, key, now: t)
            guard let r = found else {
                table.write(fd, slot, RecordTable.Record(key: key, deadline: t + policy.retry, value: t))
                return .wait(policy.delay)
            }
            if t - r.value >= policy.delay {
                table.write(fd, slot, RecordTable.Record(key: key, deadline: t + policy.lifetime, value: r.value))
                return .pass
            }
            return .wait(r.value + policy.delay - t)
        }
    }

    public var path: String { table.path }
}
