// Cluster routing (issue 22): a mailbox whose home host (the directory's
// mailHost-style field) is another host is delivered by sending the
// message there over QMTP, from inside this delivery. qmail-send keeps the
// message until the home host has said "K": a home host that is down or
// slow is a temporary failure (retried on qmail-send's schedule, never a
// bounce), a "D" from it is a bounce as from any final delivery.
//
// No loops: the copy sent carries "X-Cluster-Delivered-To: user@domain";
// a message is sent between hosts at most twice for one mailbox (the
// second hop is a move's: sent to the old home while the mailbox was
// being moved (vmoveuser), then on to the new one). A host that finds two
// such lines for the mailbox it is delivering and, too, thinks the mailbox
// lives elsewhere (two hosts each naming the other, a stale directory
// replica) defers the delivery with a message saying so; it waits there
// for the directory to be put right (or for queuelifetime's bounce, which
// then says why).
//
// Addresses: control/clusterhosts lines "host:address[:port]" (IPv6 in
// brackets; QMTP port 209 when none), else the host's A/AAAA records. This host's own name:
// control/clusterhost, else control/me.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import UserDirectory

struct ClusterRoute {
    static let markerName = "X-Cluster-Delivered-To: "
    /// Host-to-host sends of one message for one mailbox.
    static let maxHops = 2

    let home: QmailHome
    let control: Control

    init(home: QmailHome) {
        self.home = home
        self.control = Control(home: home)
    }

    /// The host `m` lives on when that is not this one. Costs nothing for
    /// a mailbox without a home host (every site that is no cluster).
    static func remoteHome(_ m: Mailbox, home: QmailHome) throws -> String? {
        guard m.homeHost != nil else { return nil }
        let me: String?
        do { me = try HomeHost.local(home: home) } catch {
            throw MailFailure.temporary("unable to read control/clusterhost or control/me: \(error)")
        }
        return HomeHost.remote(m, local: me)
    }

    /// The marker line for `address` (with its newline).
    static func marker(_ address: [UInt8]) -> [UInt8] {
        Array(markerName.utf8) + address.map { $0 == Ascii.lf ? 95 : $0 } + [Ascii.lf]
    }

    /// Where `host` listens for QMTP.
    func addresses(_ host: String) throws -> [(IPAddress, Int)] {
        for line in try control.list("clusterhosts") {
            guard let c = line.firstIndex(of: Ascii.colon), HomeHost.parse(Array(line[..<c])) == host else { continue }
            guard let route = ClusterRoute.parseAddress(Array(line[(c + 1)...])) else {
                throw MailFailure.temporary("control/clusterhosts: bad line for \(host)")
            }
            return [route]
        }
        do {
            let ips = try DNSResolver.system().ips(Array(host.utf8))
            if ips.isEmpty { throw MailFailure.temporary("cluster host \(host) has no address") }
            return ips.map { ($0, QMTPClient.defaultPort) }
        } catch let f as MailFailure { throw f } catch {
            // Even "no such host" is kept: a directory naming a host this
            // one cannot find is a misconfiguration, not the sender's fault.
            throw MailFailure.temporary("unable to find the address of cluster host \(host): \(error)")
        }
    }

    /// "192.0.2.1", "192.0.2.1:2209", "[2001:db8::1]:2209".
    static func parseAddress(_ v: [UInt8]) -> (IPAddress, Int)? {
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
        if port.isEmpty { return (ip, QMTPClient.defaultPort) }
        guard let p = Decimal.parse(port), (1...65535).contains(p) else { return nil }
        return (ip, p)
    }

    /// Sends the message to `address`'s home host `host`.
    func send(_ message: MessageInput, to host: String, address: [UInt8], sender: [UInt8]) throws {
        let mark = ClusterRoute.marker(address)
        if try message.headerCount(Array(mark.dropLast()), stopAt: ClusterRoute.maxHops) >= ClusterRoute.maxHops {
            throw MailFailure.temporary("cluster loop: \(address.string) was sent between hosts \(ClusterRoute.maxHops) times, and the directory here says \(host); not sending it on again", "4.4.6")
        }
        let connect = max(1, (try? control.number("timeoutconnect", default: 60)) ?? 60)
        let timeout = max(1, (try? control.number("timeoutremote", default: 1200)) ?? 1200)
        var last = "no address"
        for (ip, port) in try addresses(host) {
            let verdicts = QMTPClient.send(to: ip, port: port, connectTimeout: connect, timeout: timeout,
                                           size: mark.count + message.size, body: { write in
                try mark.withUnsafeBytes { try write($0) }
                try message.reader().forEachChunk(write)
            }, sender: sender, recipients: [address])
            switch verdicts.first {
            case .accepted?: return
            case .permanent(let why)?: throw MailFailure.permanent("home host \(host) refused the message: \(why)", "5.0.0")
            case .temporary(let why)?: last = why
            case nil: last = "no answer"
            }
        }
        throw MailFailure.temporary("home host \(host) did not take the message: \(last)", "4.4.1")
    }
}
