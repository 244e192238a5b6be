// A mailbox's own qmail-filter policy in LDAP: the attribute sqFilterPolicy
// (control/ldapattributes key "filterpolicy") of its account entry, the
// same "key=value,..." text as the file backend's DIR/vfilter. Looked up
// by a search of its own, apart from the login's, so a directory whose
// schema predates the attribute still logs in and delivers: slapd returns
// entries without attributes it does not know, which reads as "no policy".
#if canImport(Glibc)
import Glibc
#endif
import CLDAP
import QmailCore
import UserDirectory

extension LDAPBackend: FilterPolicyStore {
    public func filterPolicy(address: [UInt8]) throws -> [UInt8]? {
        guard let at = address.lastIndex(of: Ascii.at),
              let (user, domain) = RemoteDirectory.normalize(user: Array(address[..<at]), domain: Array(address[(at + 1)...])) else {
            return nil
        }
        let cfg = try loadConfig()
        guard let e = try account(user, domain, cfg) else { return nil }
        guard let p = e[cfg.attributes["filterpolicy"].lowercased()]?.first, !p.isEmpty else { return nil }
        return p
    }

    public func setFilterPolicy(user: [UInt8], domain: [UInt8], policy: [UInt8]?) throws {
        try setAttribute("filterpolicy", user: user, domain: domain, to: policy)
    }

    /// Sets (nil: removes) the attribute `key` (a control/ldapattributes
    /// key) of the account entry of user@domain.
    func setAttribute(_ key: String, user rawUser: [UInt8], domain rawDomain: [UInt8], to value: [UInt8]?) throws {
        guard let (user, domain) = RemoteDirectory.normalize(user: rawUser, domain: rawDomain) else {
            throw MailFailure.permanent("no such mailbox")
        }
        let cfg = try loadConfig()
        guard let e = try account(user, domain, cfg), let dn = e[""]?.first else {
            throw MailFailure.permanent("no such mailbox \(user.string)@\(domain.string) in LDAP")
        }
        let name = cfg.attributes[key]
        let rc = try modify(dn.string, name, to: value, cfg)
        switch rc {
        case LDAP_SUCCESS: return
        case LDAP_NO_SUCH_ATTRIBUTE where value == nil: return   // had none
        case LDAP_UNDEFINED_TYPE where value == nil: return
        case LDAP_UNDEFINED_TYPE, LDAP_OBJECT_CLASS_VIOLATION:
            throw MailFailure.permanent("the directory's schema has no \(name): load schemas/swift-qmail.schema anew")
        case LDAP_INSUFFICIENT_ACCESS, LDAP_STRONG_AUTH_REQUIRED:
            throw MailFailure.permanent("LDAP refused the change (\(String(cString: ldap_err2string(rc)))): "
                                        + "control/ldapadminpassword must name an account that may write \(name)")
        default:
            disconnect()
            throw LDAPBackend.error("modify", rc)
        }
    }

    /// Replaces (nil: deletes) one attribute of the entry `dn`; the
    /// server's result code.
    func modify(_ dn: String, _ name: String, to value: [UInt8]?, _ cfg: Config) throws -> Int32 {
        let h = try connection(cfg)
        var bytes = value ?? []
        return bytes.withUnsafeMutableBytes { p -> Int32 in
            var bv = berval(bv_len: ber_len_t(p.count), bv_val: p.baseAddress?.assumingMemoryBound(to: CChar.self))
            return withUnsafeMutablePointer(to: &bv) { bvp -> Int32 in
                var values: [UnsafeMutablePointer<berval>?] = [bvp, nil]
                return values.withUnsafeMutableBufferPointer { vals -> Int32 in
                    let type = strdup(name)
                    defer { free(type) }
                    var mod = LDAPMod()
                    mod.mod_op = (value == nil ? LDAP_MOD_DELETE : LDAP_MOD_REPLACE) | LDAP_MOD_BVALUES
                    mod.mod_type = type
                    mod.mod_vals.modv_bvals = value == nil ? nil : vals.baseAddress
                    return withUnsafeMutablePointer(to: &mod) { m -> Int32 in
                        var mods: [UnsafeMutablePointer<LDAPMod>?] = [m, nil]
                        return ldap_modify_ext_s(h, dn, &mods, nil, nil)
                    }
                }
            }
        }
    }

    /// The account entry of user@domain (its DN under ""), with its
    /// policy; nil when the domain or the account does not exist.
    func account(_ user: [UInt8], _ domain: [UInt8], _ cfg: Config) throws -> Entry? {
        guard let dom = try hostedDomain(domain, cfg) else { return nil }
        let address = user + [Ascii.at] + dom.real
        let found = try search(LDAPBackend.fill(cfg.filter, try LDAPBackend.escape(address)),
                               attributes: [cfg.attributes["mail"], cfg.attributes["filterpolicy"]])
        return found.first
    }
}
