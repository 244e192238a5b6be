// What the web administration (qmail-webadmin) reads, and its way into the
// commands: the same functions vadddomain & co. run, called in-process,
// failures as AdminError values instead of exit codes and stderr lines.
import QmailCore
import UserDirectory

/// A hosted domain at a glance: what deleting it takes with it.
public struct DomainSummary {
    public let domain: VDomain
    public let aliasDomains: [String]
    public let mailboxes: Int
    public let aliases: Int
    /// Messages in all its mailboxes (every Maildir++ folder).
    public let messages: Int
    public let bytes: Int
}

extension Admin {
    /// Runs one admin command (argv as vadduser & co. take it, without the
    /// program name); its notes, or the AdminError it failed with.
    public func run(_ command: String, _ args: [String]) throws -> [String] {
        guard let body = Admin.commands[command] else { throw AdminError.usage("unknown command \(command)") }
        do { return try body(self, args) } catch { throw AdminError.from(error) }
    }

    public func allDomains() throws -> [VDomain] {
        do { return try store.loadDomains() } catch { throw AdminError.from(error) }
    }

    /// The hosted real domain `name` is (or is an alias of).
    public func domain(_ name: String) throws -> VDomain {
        do { return try hostedDomain(try Names.domain(Array(name.utf8))) } catch { throw AdminError.from(error) }
    }

    public func mailboxes(_ d: VDomain) throws -> [VUser] {
        do { return try store.loadUsers(d) } catch { throw AdminError.from(error) }
    }

    public func mailbox(_ address: String) throws -> (VUser, VDomain) {
        do {
            let (user, domainName) = try Names.address(Array(address.utf8))
            let d = try hostedDomain(domainName)
            guard let u = try store.loadUsers(d).first(where: { $0.name == user }) else {
                throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
            }
            return (u, d)
        } catch { throw AdminError.from(error) }
    }

    public func aliases(_ d: VDomain) throws -> [(name: [UInt8], target: [UInt8])] {
        do { return try store.loadAliases(d) } catch { throw AdminError.from(error) }
    }

    /// Bytes and messages in a mailbox; nil when its Maildir cannot be read.
    public func usage(_ u: VUser) -> MaildirSize.Usage? { try? MaildirSize.scan(u.maildir) }

    public func summary(_ name: String) throws -> DomainSummary {
        let d = try domain(name)
        let users = try mailboxes(d)
        var messages = 0, bytes = 0
        for u in users {
            if let used = usage(u) { messages += used.count; bytes += used.bytes }
        }
        let aliasDomains = try allDomains().filter { $0.isAlias && $0.real == d.name }.map { $0.name.string }
        return DomainSummary(domain: d, aliasDomains: aliasDomains, mailboxes: users.count,
                             aliases: Set(try aliases(d).map { $0.name }).count, messages: messages, bytes: bytes)
    }

    /// What the domain's .qmail-default does with mail for nobody.
    public func catchAllAction(_ d: VDomain) -> String { unknownAction(d) }

    /// Changes what the domain does with mail for nobody: bounce (nil,
    /// vadddomain -b), "delete" (-x), or a mailbox/address to catch it
    /// all (-e TARGET), checked as vadddomain checks it.
    public func setCatchAll(_ domain: String, _ target: String?) throws {
        do {
            let args = target.map { $0 == "delete" ? ["-x"] : ["-e", $0] } ?? ["-b"]
            let action = try catchAll(try Options(args, flags: "bx", values: "e", usage: "catch-all"))
            try store.withLock {
                let d = try hostedDomain(try Names.domain(Array(domain.utf8)))
                try FileStore.writeAtomic(d.dir + "/.qmail-default", dotQmailDefault(action), mode: 0o600, owner: (d.uid, d.gid))
            }
        } catch { throw AdminError.from(error) }
    }

    /// The DNS records `vdkim records` prints, as lines.
    public func dnsRecords(_ domain: String) throws -> [String] {
        do { return try dkimRecordLines(try dkimDomain(domain)) } catch { throw AdminError.from(error) }
    }
}
