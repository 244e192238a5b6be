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
// Anybody can write that line into a message, so with control/clustersecret
// (the same on every host) the marker carries "; mac=" and an HMAC-SHA1,
// under the secret, of the address and of the whole message it was put on
// top of. Only a marker whose MAC matches the bytes below it counts: a
// forged one (from SMTP, say) is an ordinary header line and the message is
// routed as any other; replaying a real marker works only on the very
// message it was made for, which then really was sent home already. The
// first line of clustersecret signs, every line verifies (a new secret is
// put first, the old one kept until the queues have drained). Without the
// file, markers are unkeyed and any one counts.
//
// Addresses: QmailNet's ClusterHosts (control/clusterhosts, else DNS; QMTP
// port 209 when the line names none). This host's own name:
// control/clusterhost, else control/me.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import UserDirectory

struct ClusterRoute {
    static let markerName = "X-Cluster-Delivered-To: "
    static let macTag = Array("; mac=".utf8)
    /// Host-to-host sends of one message for one mailbox (a move needs two).
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
        try HomeHost.elsewhere(m, home: home)
    }

    /// control/clustersecret's lines; none: markers are unkeyed.
    func secrets() throws -> [[UInt8]] {
        do { return try control.list("clustersecret") } catch {
            throw MailFailure.temporary("unable to read control/clustersecret: \(error)")
        }
    }

    /// The marker line for `address` (with its newline), on top of `message`.
    static func marker(_ address: [UInt8], secret: [UInt8]?, message: MessageInput) throws -> [UInt8] {
        let name = markerAddress(address)
        var line = Array(markerName.utf8) + name
        if let k = secret { line += macTag + (try mac(k, name, message, from: 0)) }
        return line + [Ascii.lf]
    }

    static func markerAddress(_ address: [UInt8]) -> [UInt8] {
        address.lowercasedASCII().map { $0 == Ascii.lf ? 95 : $0 }
    }

    /// HMAC-SHA1 in hex over the address and the message from `offset` on.
    static func mac(_ key: [UInt8], _ name: [UInt8], _ message: MessageInput, from offset: Int) throws -> [UInt8] {
        var h = HMACSHA1.Stream(key: key)
        h.update(name + [Ascii.lf])
        try message.reader(from: offset).forEachChunk { h.update(Array($0)) }
        return MD5.hex(digest: h.finish())
    }

    /// How many markers for `address` on `message` count (stopping at
    /// `limit`): those this cluster made (their MAC matches the bytes below
    /// them), or, unkeyed, every one. A forged marker never counts.
    static func hopsHome(_ message: MessageInput, address: [UInt8], secrets: [[UInt8]], limit: Int = maxHops) throws -> Int {
        let name = markerAddress(address)
        let prefix = Array(markerName.utf8) + name
        var markers: [(mac: [UInt8], end: Int)] = []
        try message.forEachHeaderLine { line, end in
            guard line.count >= prefix.count, Array(line[..<prefix.count]).caseInsensitiveEquals(prefix) else { return false }
            let rest = Array(line[prefix.count...])
            if rest.isEmpty { markers.append(([], end)) }
            else if rest.count > macTag.count && Array(rest[..<macTag.count]) == macTag {
                markers.append((Array(rest[macTag.count...]).lowercasedASCII(), end))
            }
            return secrets.isEmpty && markers.count >= limit
        }
        if secrets.isEmpty { return min(markers.count, limit) }
        var n = 0
        for m in markers where !m.mac.isEmpty && n < limit {
            for k in secrets where ConstantTime.equals(try mac(k, name, message, from: m.end), m.mac) {
                n += 1
                break
            }
        }
        return n
    }

    /// Where `host` listens for QMTP.
    func addresses(_ host: String) throws -> [(IPAddress, Int)] {
        try ClusterHosts.addresses(of: host, control: control).map { ($0.0, $0.1 ?? QMTPClient.defaultPort) }
    }

    /// Sends the message to `address`'s home host `host`.
    func send(_ message: MessageInput, to host: String, address: [UInt8], sender: [UInt8]) throws {
        let keys = try secrets()
        if try ClusterRoute.hopsHome(message, address: address, secrets: keys) >= ClusterRoute.maxHops {
            throw MailFailure.temporary("cluster loop: \(address.string) was sent between hosts \(ClusterRoute.maxHops) times, and the directory here says \(host); not sending it on again", "4.4.6")
        }
        let connect = max(1, (try? control.number("timeoutconnect", default: 60)) ?? 60)
        let timeout = max(1, (try? control.number("timeoutremote", default: 1200)) ?? 1200)
        let mark = try ClusterRoute.marker(address, secret: keys.first, message: message)
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
