// vfilterpolicy: qmail-filter's policy for the site, a domain or a mailbox.
// The site's and the domains' are lines of control/filter (comments and
// other lines kept); a mailbox's is its line in the domain's DIR/vfilter,
// or, where control/userdirectory says "ldap" or "mysql", its entry's
// sqFilterPolicy or its users row's filter_policy: vfilterpolicy then
// execs vfilterpolicy-ldap/-mysql, which link the backend's library.
// Every change is checked the way qmail-filter reads it before it is
// written: a typo must not leave a file that defers all mail.
import QmailCore
import QmailFilter
import UserDirectory

extension Admin {
    func filterPolicy(_ args: [String]) throws -> [String] {
        let usage = "vfilterpolicy [-d] site|domain|user@domain [key=value,...]"
        let o = try Options(args, flags: "d", values: "", usage: usage)
        guard o.operands.count == 1 || (o.operands.count == 2 && !o.flags.contains("d")) else { throw AdminError.usage(usage) }
        let target = o.operands[0].lowercased()
        let policy: [UInt8]? = o.operands.count == 2 ? Array(o.operands[1].filter { $0 != " " }.utf8) : nil
        let show = policy == nil && !o.flags.contains("d")
        if target.contains("@") {
            let (user, domainName) = try Names.address(Array(target.utf8))
            if let p = policy {
                do { _ = try FilterPolicy.Judgement().applying(p) } catch {
                    throw AdminError.refused("\(error) (a mailbox may set virus, spam, tag, reject, quarantine)")
                }
            }
            if policyStore == nil, let variant = try DirectoryChoice.variant(of: "vfilterpolicy", home: home) {
                let e = ChildProcess.exec(.init([variant] + CommandLine.arguments.dropFirst(), program: variant))
                throw MailFailure.temporary("unable to run \(variant): \(e)")
            }
            if let directory = policyStore {
                switch directory.recipient(user: user, domain: domainName, aliases: false) {
                case .mailbox: break
                case .temporary(let why): throw MailFailure.temporary(why)
                default: throw AdminError.refused("no such user \(target)")
                }
                if show {
                    let p = try directory.filterPolicy(address: user + [Ascii.at] + domainName)
                    return try printed(p.map { "\(target): \($0.string)" } ?? "\(target): no policy of its own")
                }
                try directory.setFilterPolicy(user: user, domain: domainName, policy: policy)
                return []
            }
            return try store.withLock {
                let d = try hostedDomain(domainName)
                guard try store.loadUsers(d).contains(where: { $0.name == user }) else {
                    throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
                }
                if show {
                    let p = try FileStore.loadFilterPolicies(d).first { $0.user == user }?.policy
                    return try printed(p.map { "\(target): \($0.string)" } ?? "\(target): no policy of its own")
                }
                try store.setFilterPolicy(d, user: user, policy: policy)
                return []
            }
        }
        let name = target == "site" ? "" : target
        if !name.isEmpty {
            let bare = name.hasPrefix(".") ? String(name.dropFirst()) : name
            _ = try Names.domain(Array(bare.utf8))
        }
        return try store.withLock {
            let path = Control(home: home).path("filter")
            let lines = (try FileIO.read(path)).map { $0.split(separator: Ascii.lf, omittingEmptySubsequences: false).map { Array($0) } } ?? []
            func isTarget(_ l: [UInt8]) -> Bool {
                guard l.first != UInt8(ascii: "#"), let c = l.firstIndex(of: Ascii.colon) else { return false }
                return String(decoding: l[..<c].filter { $0 != Ascii.space && $0 != Ascii.tab }, as: UTF8.self).lowercased() == name
            }
            if show {
                let l = lines.first(where: isTarget)
                return try printed(l.map { "\(target): \(String(decoding: $0[($0.firstIndex(of: Ascii.colon)! + 1)...], as: UTF8.self))" }
                                   ?? "\(target): no line in control/filter")
            }
            var out = lines.filter { !isTarget($0) }
            while out.last?.isEmpty == true { out.removeLast() }
            if let p = policy { out.append(Array(name.utf8) + [Ascii.colon] + p) }
            var text: [UInt8] = []
            for l in out { text += l + [Ascii.lf] }
            do { _ = try FilterPolicy.parse(text) } catch { throw AdminError.refused("\(error)") }
            try FileIO.writeAtomic(path, text, mode: 0o644)
            return []
        }
    }

    /// A policy shown goes to stdout, for scripts.
    private func printed(_ line: String) throws -> [String] {
        try Sys.writeAll(1, line + "\n")
        return []
    }
}
