// The embedded file backend (the default): domains in HOME/users/vdomains.cdb,
// users and aliases in each domain's vpasswd.cdb. A lookup opens two small
// cdbs and probes each once. Anything unreadable is a temporary failure; only
// a definite miss is "no such user".
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct FileBackend: UserBackend {
    public let home: QmailHome
    public let plainPasswordsEnabled: Bool

    public init(home: QmailHome, plainPasswordsEnabled: Bool? = nil) {
        self.home = home
        self.plainPasswordsEnabled = plainPasswordsEnabled
            ?? (((try? Control(home: home).number("vplaintext", default: 0)) ?? 0) != 0)
    }

    public var domainsText: String { home.users + "/vdomains" }
    public var domainsCdb: String { home.users + "/vdomains.cdb" }

    /// What a recipient is, for delivery.
    public enum Recipient: Equatable {
        case mailbox(Mailbox, VDomain)
        case alias([[UInt8]], VDomain)
        /// The domain is hosted but has no such user or alias.
        case noSuchUser(VDomain)
        case noSuchDomain
        case temporary(String)
    }

    public func lookup(login: [UInt8]) -> LookupResult {
        if login.isEmpty || login.count > Names.maxUser + 1 + Names.maxDomain { return .noSuchUser }
        var user = login
        var domainName: [UInt8]
        if let at = login.lastIndex(of: Ascii.at) ?? login.lastIndex(of: Ascii.percent) {
            user = Array(login[0..<at])
            domainName = Array(login[(at + 1)...])
        } else {
            do {
                guard let d = try Control(home: home).line("vdefaultdomain"), !d.isEmpty else { return .noSuchUser }
                domainName = d
            } catch {
                return .temporary("unable to read control/vdefaultdomain: \(error)")
            }
        }
        switch recipient(user: user, domain: domainName, aliases: false) {
        case .mailbox(let m, _): return .found(m)
        case .temporary(let why): return .temporary(why)
        case .alias, .noSuchUser, .noSuchDomain: return .noSuchUser
        }
    }

    /// The domain entry; nil when not hosted.
    public func domain(_ raw: [UInt8]) throws -> VDomain? {
        guard let name = try? Names.domain(raw) else { return nil }
        let reader: CdbReader?
        do {
            reader = try CdbReader.open(domainsCdb)
        } catch {
            throw MailFailure.temporary("unable to read \(domainsCdb): \(error)")
        }
        guard let cdb = reader else {
            // No index at all means no hosted domain yet, unless the text
            // says there should be one.
            if Sys.exists(domainsText) { throw MailFailure.temporary("\(domainsCdb) is missing; run vadddomain or vconvert to rebuild it") }
            return nil
        }
        let data: [UInt8]?
        do { data = try cdb.find(name) } catch { throw MailFailure.temporary("unable to read \(domainsCdb): \(error)") }
        guard let d = data else { return nil }
        guard let dom = VDomain.parse(name: name, cdbData: d) else {
            throw MailFailure.temporary("bad record for \(name.string) in \(domainsCdb)")
        }
        return dom
    }

    /// Looks up user@domain: a mailbox, or (with `aliases`) an alias.
    public func recipient(user rawUser: [UInt8], domain rawDomain: [UInt8], aliases: Bool = true) -> Recipient {
        let dom: VDomain
        do {
            guard let d = try domain(rawDomain) else { return .noSuchDomain }
            dom = d
        } catch {
            return .temporary("\(error)")
        }
        guard let user = try? Names.user(rawUser) else { return .noSuchUser(dom) }
        let path = dom.dir + "/vpasswd.cdb"
        do {
            guard let cdb = try CdbReader.open(path) else {
                return .temporary("\(path) is missing for hosted domain \(dom.real.string)")
            }
            if let line = try cdb.find([Ascii.equals] + user) {
                guard let u = VUser.parse(cdbData: line) else { return .temporary("bad record for \(user.string) in \(path)") }
                // vmoveuser is copying the Maildir: mail and logins wait.
                if let to = u.movingTo {
                    return .temporary("mailbox \(user.string)@\(dom.real.string) is being moved to \(to)")
                }
                return .mailbox(u.mailbox(domain: dom), dom)
            }
            if aliases, let targets = try cdb.find([Ascii.at] + user) {
                return .alias(targets.split(byte: Ascii.lf).filter { !$0.isEmpty }, dom)
            }
            return .noSuchUser(dom)
        } catch {
            return .temporary("unable to read \(path): \(error)")
        }
    }
}
