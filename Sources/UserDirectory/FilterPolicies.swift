// Mailboxes' own content-filter policies in the file backend: DIR/vfilter
// of each domain, lines "user:key=value,..." (qmail-filter's keys: virus,
// spam, tag, reject, quarantine). Kept beside vpasswd rather than in it,
// so vpasswd keeps vpopmail's format, and readable by qmail-filter's user
// (mode 644: a policy is no secret). Set with vfilterpolicy.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Where mailboxes' own filter policies are kept: the file backend here,
/// LDAP (attribute sqFilterPolicy) and MySQL (column users.filter_policy)
/// in checkpassword/. qmail-filter reads them, vfilterpolicy changes them.
public protocol FilterPolicyDirectory {
    /// The policy text of the mailbox `address` names; nil when it has
    /// none (or is nobody). Throws a temporary failure when the directory
    /// cannot say now.
    func filterPolicy(address: [UInt8]) throws -> [UInt8]?
}

/// A directory vfilterpolicy can change (LDAP and MySQL; the file
/// backend's change goes through FileStore under the admin lock).
public protocol FilterPolicyStore: FilterPolicyDirectory, RecipientDirectory {
    /// Sets (nil: removes) the policy of the mailbox user@domain. Throws
    /// MailFailure: permanent when there is no such mailbox or the
    /// directory has no place for a policy, temporary when it is down.
    func setFilterPolicy(user: [UInt8], domain: [UInt8], policy: [UInt8]?) throws
}

/// control/userdirectory: which backend holds the users ("file", the
/// default, "ldap" or "mysql"). Programs that would link libldap or
/// libmariadb for it exec their "-ldap"/"-mysql" variant instead.
public enum DirectoryChoice {
    public static let remote = ["ldap", "mysql"]

    /// "ldap" or "mysql"; nil for the file backend. Throws a temporary
    /// failure when the file cannot be read or names no backend.
    public static func remoteBackend(home: QmailHome) throws -> String? {
        let choice: [UInt8]?
        do { choice = try Control(home: home).line("userdirectory") } catch {
            throw MailFailure.temporary("unable to read control/userdirectory: \(error)")
        }
        guard let c = choice, !c.isEmpty, c != Array("file".utf8) else { return nil }
        guard remote.contains(c.string) else {
            throw MailFailure.temporary("control/userdirectory: unknown backend \(c.string) (want file, ldap or mysql)")
        }
        return c.string
    }

    /// HOME/bin/PROGRAM-ldap or -mysql; nil for the file backend.
    public static func variant(of program: String, home: QmailHome) throws -> String? {
        try remoteBackend(home: home).map { home.bin(program + "-" + $0) }
    }
}

extension FileBackend: FilterPolicyDirectory {
    /// The policy text of the mailbox `address` names; nil when its domain
    /// is not hosted or it has none. Throws when the directory cannot say.
    public func filterPolicy(address: [UInt8]) throws -> [UInt8]? {
        guard let at = address.lastIndex(of: Ascii.at), at > 0,
              let dom = try domain(Array(address[(at + 1)...]).lowercasedASCII()) else { return nil }
        let user = Array(address[..<at]).lowercasedASCII()
        return try FileStore.loadFilterPolicies(dom).first { $0.user == user }?.policy
    }
}

extension FileStore {
    static func filterPoliciesPath(_ dom: VDomain) -> String { dom.dir + "/vfilter" }

    public static func loadFilterPolicies(_ dom: VDomain) throws -> [(user: [UInt8], policy: [UInt8])] {
        guard let data = try FileIO.read(filterPoliciesPath(dom), limit: 16 << 20) else { return [] }
        return Control.parseList(data).compactMap { line in
            guard let c = line.firstIndex(of: Ascii.colon), c > 0 else { return nil }
            return (Array(line[..<c]), Array(line[(c + 1)...]))
        }
    }

    /// Sets (or with nil removes) one mailbox's policy; hold the admin lock.
    public func setFilterPolicy(_ dom: VDomain, user: [UInt8], policy: [UInt8]?) throws {
        let before = try FileStore.loadFilterPolicies(dom)
        var all = before.filter { $0.user != user }
        if policy == nil && all.count == before.count { return }
        if let p = policy { all.append((user, p)) }
        var text: [UInt8] = []
        for e in all { text += e.user + [Ascii.colon] + e.policy + [Ascii.lf] }
        try FileStore.writeAtomic(FileStore.filterPoliciesPath(dom), text, mode: 0o644, owner: (dom.uid, dom.gid))
    }
}
