// Cluster home hosts (issue 22): every mailbox lives on one host, named in
// the user directory (the mailbox's own, else its domain's default, as
// qmail-ldap's mailHost). A host knows itself by control/clusterhost, else
// control/me; mail for a mailbox homed elsewhere is sent there by
// vdelivermail (VDelivery's ClusterRoute), and a POP3 login to it is
// relayed there (checkpassword runs qmail-pop3proxy).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum HomeHost {
    /// A host name as the directory holds it: a domain name, lower-cased;
    /// nil for an empty or malformed value.
    public static func parse(_ raw: [UInt8]) -> String? {
        var v = raw
        while let l = v.last, l == Ascii.space || l == Ascii.tab || l == Ascii.cr { v.removeLast() }
        while let f = v.first, f == Ascii.space || f == Ascii.tab { v.removeFirst() }
        guard !v.isEmpty, let name = try? Names.domain(v) else { return nil }
        return name.string
    }

    /// This host's cluster name: control/clusterhost, else control/me.
    public static func local(home: QmailHome) throws -> String? {
        let control = Control(home: home)
        if let c = try control.line("clusterhost"), let name = parse(c) { return name }
        return try control.line("me").flatMap { parse($0) }
    }

    /// Where `mailbox` lives, seen from a host named `local`: nil when here.
    public static func remote(_ mailbox: Mailbox, local: String?) -> String? {
        guard let h = mailbox.homeHost, h != local else { return nil }
        return h
    }

    /// Where `mailbox` lives when that is not this host (nil: here). Reads
    /// the control files only for a mailbox that has a home host.
    public static func elsewhere(_ mailbox: Mailbox, home: QmailHome) throws -> String? {
        guard mailbox.homeHost != nil else { return nil }
        let me: String?
        do { me = try local(home: home) } catch {
            throw MailFailure.temporary("unable to read control/clusterhost or control/me: \(error)")
        }
        return remote(mailbox, local: me)
    }

    // MARK: the file backend's DIR/vmailhost and DIR/vmoving ("user:host" lines)

    /// A directory server's mailbox being moved away from this host: the
    /// host DOMAINDIR/vmoving names for `user` (this host's own file, the
    /// same lines as the file backend's), unless the directory already
    /// names that host as the home (the move is done as far as this
    /// host's replica knows, and the mail goes there). nil: not moving.
    public static func moving(_ mailbox: Mailbox, user: [UInt8], domainDir: String) throws -> String? {
        guard !domainDir.isEmpty, let to = try readFile(domainDir + "/vmoving")[user], mailbox.homeHost != to else { return nil }
        return to
    }

    public static func readFile(_ path: String) throws -> [[UInt8]: String] {
        guard let data = try FileIO.read(path) else { return [:] }
        var out: [[UInt8]: String] = [:]
        for (i, line) in Control.parseList(data).enumerated() {
            guard let c = line.firstIndex(of: Ascii.colon), c > 0, let h = parse(Array(line[(c + 1)...])) else {
                throw MailFailure.temporary("\(path) line \(i + 1) is malformed")
            }
            out[Array(line[0..<c])] = h
        }
        return out
    }

    /// The lines for the users whose `host` is set.
    public static func fileText(_ users: [VUser], _ host: KeyPath<VUser, String?> = \.homeHost) -> [UInt8] {
        var text: [UInt8] = []
        for u in users { if let h = u[keyPath: host] { text += u.name + [Ascii.colon] + Array(h.utf8) + [Ascii.lf] } }
        return text
    }
}

/// A directory vmoveuser changes (LDAP, MySQL: writes go to the provider
/// or primary); the file backend's change goes through FileStore.
public protocol HomeHostStore: RecipientDirectory {
    /// Names `host` as the home of the mailbox user@domain. Throws
    /// MailFailure: permanent when there is no such mailbox or no place
    /// for the value, temporary when the directory is down.
    func setHomeHost(user: [UInt8], domain: [UInt8], host: String) throws
}
