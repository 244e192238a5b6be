// A mailbox's own forwarding, kept where vdelivermail reads it: the
// mailbox's DIR/.qmail ("&address" lines, and the Maildir's own line when
// a copy stays). Other lines there (a program such as an autoresponder,
// comments) are kept as they are, in their order.
import QmailCore
import QmailLocal
import UserDirectory

public struct Forwarding: Equatable {
    public var targets: [[UInt8]]
    /// A copy stays in the mailbox's Maildir too.
    public var keepCopy: Bool

    public init(targets: [[UInt8]] = [], keepCopy: Bool = false) {
        self.targets = targets
        self.keepCopy = keepCopy
    }

    /// Splits DIR/.qmail into forwarding and the lines it leaves alone.
    static func parse(_ data: [UInt8], maildir: String) -> (Forwarding, others: [[UInt8]]) {
        var f = Forwarding()
        var others: [[UInt8]] = []
        for line in Control.parseList(data) {
            switch DotQmail.instruction(line) {
            case .forward(let a): f.targets.append(a)
            case .maildir(let raw) where Forwarding.isOwn(raw, maildir): f.keepCopy = true
            default: others.append(line)
            }
        }
        return (f, others)
    }

    static func isOwn(_ raw: [UInt8], _ maildir: String) -> Bool {
        let s = raw.string
        return s == maildir + "/" || s == "./Maildir/" && maildir.hasSuffix("/Maildir")
    }
}

extension Admin {
    public func forwarding(_ address: String) throws -> Forwarding {
        let (u, _) = try mailbox(address)
        do { return Forwarding.parse(try FileIO.read(u.dir + "/.qmail") ?? [], maildir: u.maildir).0 } catch {
            throw AdminError.from(error)
        }
    }

    /// Replaces a mailbox's forwarding. Without targets the Maildir gets
    /// the mail (and DIR/.qmail goes when nothing else is in it).
    public func setForwarding(_ address: String, _ f: Forwarding) throws {
        do {
            let targets = try f.targets.map { t -> [UInt8] in
                let checked = try Names.forwardTarget(t)
                if checked.first == Ascii.slash { throw AdminError.refused("forward to an address user@domain") }
                return checked
            }
            try modifyUser(address) { u, d in
                let path = u.dir + "/.qmail"
                let others = Forwarding.parse(try FileIO.read(path) ?? [], maildir: u.maildir).others
                var lines = others
                if targets.isEmpty || f.keepCopy { lines.append(Array((u.maildir + "/").utf8)) }
                lines += targets.map { [UInt8(ascii: "&")] + $0 }
                if others.isEmpty && targets.isEmpty {
                    if Sys.exists(path) { try Sys.unlink(path) }
                    return
                }
                try FileStore.writeAtomic(path, lines.flatMap { $0 + [Ascii.lf] }, mode: 0o600, owner: (d.uid, d.gid))
            }
        } catch { throw AdminError.from(error) }
    }
}
