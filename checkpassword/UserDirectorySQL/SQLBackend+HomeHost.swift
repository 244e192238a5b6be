// A mailbox's home host in MySQL, written by vmoveuser-mysql: the column
// users.mail_host (control/sqlnames key "users.mailhost"), on the primary
// (the writer is made with admin: true).
import QmailCore
import UserDirectory

extension SQLBackend: HomeHostStore {
    func setHomeHostQuery(_ n: NameMap) -> String {
        func q(_ k: String) -> String { "`" + n[k] + "`" }
        return "UPDATE \(q("users")) u JOIN \(q("domains")) d ON u.\(q("users.domain")) = d.\(q("domains.real")) "
            + "SET u.\(q("users.mailhost")) = ? WHERE d.\(q("domains.name")) = ? AND u.\(q("users.local")) = ?"
    }

    public func setHomeHost(user rawUser: [UInt8], domain rawDomain: [UInt8], host: String) throws {
        guard let (user, domain) = RemoteDirectory.normalize(user: rawUser, domain: rawDomain) else {
            throw MailFailure.permanent("no such mailbox")
        }
        guard case .mailbox = recipient(user: user, domain: domain, aliases: false) else {
            throw MailFailure.permanent("no such mailbox \(user.string)@\(domain.string) in MySQL")
        }
        do { _ = try run(\.setHomeHostStatement, make: setHomeHostQuery, columns: 0, params: [Array(host.utf8), domain, user]) } catch is UnknownColumn {
            throw MailFailure.permanent("the users table has no \(try loadConfig().names["users.mailhost"]) column: "
                                        + "run the migration in schemas/mysql.sql")
        }
    }
}
