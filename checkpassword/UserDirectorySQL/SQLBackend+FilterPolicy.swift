// A mailbox's own qmail-filter policy in MySQL: the column
// users.filter_policy (control/sqlnames key "users.filterpolicy"), NULL
// for none, the same "key=value,..." text as the file backend's
// DIR/vfilter. Read by a statement of its own, never by the login query,
// so a users table that predates the column (schemas/mysql.sql's
// migration not run) still logs in and delivers: "unknown column" reads
// as "no policy" and is logged once per process.
import QmailCore
import UserDirectory

extension SQLBackend: FilterPolicyStore {
    func policyQuery(_ n: NameMap) -> String {
        func q(_ k: String) -> String { "`" + n[k] + "`" }
        return "SELECT u.\(q("users.filterpolicy")) FROM \(q("domains")) d JOIN \(q("users")) u "
            + "ON u.\(q("users.domain")) = d.\(q("domains.real")) AND u.\(q("users.local")) = ? "
            + "WHERE d.\(q("domains.name")) = ? LIMIT 2"
    }

    func setPolicyQuery(_ n: NameMap) -> String {
        func q(_ k: String) -> String { "`" + n[k] + "`" }
        return "UPDATE \(q("users")) u JOIN \(q("domains")) d ON u.\(q("users.domain")) = d.\(q("domains.real")) "
            + "SET u.\(q("users.filterpolicy")) = NULLIF(?, '') WHERE d.\(q("domains.name")) = ? AND u.\(q("users.local")) = ?"
    }

    public func filterPolicy(address: [UInt8]) throws -> [UInt8]? {
        guard let at = address.lastIndex(of: Ascii.at),
              let (user, domain) = RemoteDirectory.normalize(user: Array(address[..<at]), domain: Array(address[(at + 1)...])),
              String(validatingUTF8: address.map { CChar(bitPattern: $0) } + [0]) != nil else { return nil }
        let rows: [[[UInt8]?]]
        do { rows = try run(\.policyStatement, make: policyQuery, columns: 1, params: [user, domain]) } catch is UnknownColumn {
            if !noPolicyColumnLogged {
                noPolicyColumnLogged = true
                Sys.warn("MySQL: the users table has no \(try loadConfig().names["users.filterpolicy"]) column "
                         + "(schemas/mysql.sql's migration); mailboxes have no filter policy of their own")
            }
            return nil
        }
        if rows.count > 1 { throw MailFailure.temporary("MySQL: more than one row for \(user.string)@\(domain.string)") }
        guard let p = rows.first?[0] ?? nil, !p.isEmpty else { return nil }
        return p
    }

    public func setFilterPolicy(user rawUser: [UInt8], domain rawDomain: [UInt8], policy: [UInt8]?) throws {
        guard let (user, domain) = RemoteDirectory.normalize(user: rawUser, domain: rawDomain) else {
            throw MailFailure.permanent("no such mailbox")
        }
        let exists: [[[UInt8]?]]
        do { exists = try run(\.policyStatement, make: policyQuery, columns: 1, params: [user, domain]) } catch is UnknownColumn {
            throw MailFailure.permanent("the users table has no \(try loadConfig().names["users.filterpolicy"]) column: "
                                        + "run the migration in schemas/mysql.sql")
        }
        guard !exists.isEmpty else { throw MailFailure.permanent("no such mailbox \(user.string)@\(domain.string) in MySQL") }
        if exists.first?[0] == nil && policy == nil { return }
        // None is NULL: the parameter is "" and NULLIF makes it NULL.
        _ = try run(\.setPolicyStatement, make: setPolicyQuery, columns: 0, params: [policy ?? [], domain, user])
    }
}
