// Cluster routing (issue 22): a mailbox whose home host (the directory's
// mailHost-style field) is another host is delivered by sending the
// message there over QMTP, from inside this delivery. qmail-send keeps the
// message until the home host has said "K": a home host that is down or
// slow is a temporary failure (retried on qmail-send's schedule, never a
// bounce), a "D" from it is a bounce as from any final delivery.
//
// No loops: the copy sent carries "X-Cluster-Delivered-To: user@domain";
// a host that finds that line for the mailbox it is delivering never sends
// the message on again. If it, too, thinks the mailbox lives elsewhere (two
// hosts each naming the other, a stale directory replica during a move),
// the delivery is deferred with a message saying so, and waits there for
// the directory to be put right (or for queuelifetime's bounce, which then
// says why).
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

    /// The marker line for `address` (with its newline).
    static func marker(_ address: [UInt8]) -> [UInt8] {
        Array(markerName.utf8) + address.map { $0 == Ascii.lf ? 95 : $0 } + [Ascii.lf]
    }

    /// Where `host` listens for QMTP.
    func addresses(_ host: String) throws -> [(IPAddress, Int)] {
        try ClusterHosts.addresses(of: host, control: control).map { ($0.0, $0.1 ?? QMTPClient.defaultPort) }
    }

    /// Sends the message to `address`'s home host `host`.
    func send(_ message: MessageInput, to host: String, address: [UInt8], sender: [UInt8]) throws {
        let mark = ClusterRoute.marker(address)
        if try message.headerContains(Array(mark.dropLast())) {
            throw MailFailure.temporary("cluster loop: \(address.string) was sent to this host as its home, but the directory here says \(host); not sending it on again", "4.4.6")
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
