// A mailbox's home host in LDAP, written by vmoveuser-ldap: sqMailHost
// (control/ldapattributes key "mailhost") of its account entry, on the
// provider (the writer is made with admin: true).
import QmailCore
import UserDirectory

extension LDAPBackend: HomeHostStore {
    public func setHomeHost(user: [UInt8], domain: [UInt8], host: String) throws {
        try setAttribute("mailhost", user: user, domain: domain, to: Array(host.utf8))
    }
}
