// vdkim: the DKIM keys qmail-remote signs with (DKIMKeyStore's layout).
//
//   vdkim create [-a rsa|ed25519|both] [-b bits] [-s name] domain
//   vdkim rotate [-a ...] [-b bits] [-s name] [-n] domain
//   vdkim activate domain selector...
//   vdkim list [domain]
//   vdkim remove [-f] domain [selector...]
//   vdkim dns domain [selector...]
//   vdkim records domain      (SPF and DMARC suggestions beside the DKIM records)
//
// Keys belong to the account qmail-remote runs as (qmailr, from HOME/ids)
// and nobody else can read them.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailDKIM
import UserDirectory

extension Admin {
    static let dkimUsage = """
        vdkim create [-a rsa|ed25519|both] [-b bits] [-s name] domain
               vdkim rotate [-a rsa|ed25519|both] [-b bits] [-s name] [-n] domain
               vdkim activate domain selector...
               vdkim list [domain]
               vdkim remove [-f] domain [selector...]
               vdkim dns domain [selector...]
               vdkim records domain
        """

    var dkimStore: DKIMKeyStore { DKIMKeyStore(home: home) }

    func dkim(_ args: [String]) throws -> [String] {
        guard let verb = args.first else { throw AdminError.usage(Self.dkimUsage) }
        let rest = Array(args.dropFirst())
        switch verb {
        case "create": return try dkimCreate(rest, rotate: false)
        case "rotate": return try dkimCreate(rest, rotate: true)
        case "activate": return try dkimActivate(rest)
        case "list": return try dkimList(rest)
        case "remove": return try dkimRemove(rest)
        case "dns": return try dkimDNS(rest)
        case "records": return try dkimRecords(rest)
        default: throw AdminError.usage(Self.dkimUsage)
        }
    }

    func dkimDomain(_ s: String) throws -> String {
        guard let d = DKIMDomain.normalize(Array(s.utf8)) else { throw AdminError.refused("bad domain name: \(s)") }
        return d
    }

    /// qmailr's uid, and the qmail group: the owner of every key file.
    func dkimOwner() throws -> (uid_t, gid_t) {
        if geteuid() != 0 { return (geteuid(), getegid()) }
        guard let ids = try? QmailIds.load(home: home), let u = ids.uid("qmailr"), let g = ids.gid("qmail") else {
            throw AdminError.system("cannot tell which uid qmail-remote runs as (HOME/ids, or the account qmailr)")
        }
        return (u, g)
    }

    func dkimCreate(_ args: [String], rotate: Bool) throws -> [String] {
        let usage = Self.dkimUsage
        let o = try Options(args, flags: rotate ? "n" : "", values: "abs", usage: usage)
        guard o.operands.count == 1 else { throw AdminError.usage(usage) }
        let domain = try dkimDomain(o.operands[0])
        let algorithms: [DKIMAlgorithm]
        switch o.values["a"] ?? "both" {
        case "both": algorithms = [.rsa, .ed25519]
        case "rsa": algorithms = [.rsa]
        case "ed25519": algorithms = [.ed25519]
        default: throw AdminError.usage(usage)
        }
        var bits = 2048
        if let b = o.values["b"] {
            guard let n = Decimal.parse(Array(b.utf8)), (1024...8192).contains(n) else {
                throw AdminError.refused("RSA key size must be 1024 to 8192 bits")
            }
            bits = n
        }
        if let s = o.values["s"], !DKIMSelectorName.isValid(s) { throw AdminError.refused("bad selector name: \(s)") }
        let store = dkimStore
        let owner = try dkimOwner()
        var lines: [String] = []
        var names: [String] = []
        try self.store.withLock {
            let existing = try store.selectors(domain)
            if !rotate && !existing.isEmpty {
                throw AdminError.refused("\(domain) has keys already: use vdkim rotate")
            }
            if rotate && existing.isEmpty { throw AdminError.refused("\(domain) has no keys: use vdkim create") }
            let base = try o.values["s"] ?? freeSelectorBase(domain, existing)
            names = algorithms.map { base + $0.selectorLetter }
            for n in names where existing.contains(where: { $0.name == n }) {
                throw AdminError.refused("selector \(n) of \(domain) exists already")
            }
            try FileStore.makeDirectory(store.directory, mode: 0o700, owner: owner)
            try FileStore.makeDirectory(store.domainDirectory(domain), mode: 0o700, owner: owner)
            for (a, name) in zip(algorithms, names) {
                let key = try DKIMKey.generate(a, bits: bits)
                try FileStore.writeAtomic(store.keyPath(domain, name, a), try key.privatePEM(), mode: 0o600, owner: owner)
                lines.append(try DKIMRecord.zoneLine(domain: domain, selector: name, key: key))
            }
            if !o.flags.contains("n") {
                // The new keys replace the old ones of the same types.
                let kept = existing.filter { s in s.signing && !algorithms.contains(s.algorithm) }.map(\.name)
                try writeSigning(domain, kept + names, owner)
            }
        }
        for l in lines { print(l) }
        if o.flags.contains("n") {
            return ["publish the records, then: vdkim activate \(domain) \(names.joined(separator: " "))"]
        }
        return []
    }

    /// sYYYYMM, or sYYYYMM-N when that month has keys already.
    func freeSelectorBase(_ domain: String, _ existing: [DKIMSelector]) throws -> String {
        var t = time_t(Sys.now())
        var tm = Glibc.tm()
        gmtime_r(&t, &tm)
        let month = "s" + String(tm.tm_year + 1900) + (tm.tm_mon + 1 < 10 ? "0" : "") + String(tm.tm_mon + 1)
        let taken = Set(existing.map { String($0.name.dropLast()) })
        if !taken.contains(month) { return month }
        for n in 2...999 where !taken.contains("\(month)-\(n)") { return "\(month)-\(n)" }
        throw AdminError.refused("too many keys for \(domain) this month")
    }

    func writeSigning(_ domain: String, _ selectors: [String], _ owner: (uid_t, gid_t)) throws {
        let text = selectors.map { $0 + "\n" }.joined()
        try FileStore.writeAtomic(dkimStore.signPath(domain), Array(text.utf8), mode: 0o600, owner: owner)
    }

    func dkimActivate(_ args: [String]) throws -> [String] {
        let usage = Self.dkimUsage
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count >= 2 else { throw AdminError.usage(usage) }
        let domain = try dkimDomain(o.operands[0])
        let owner = try dkimOwner()
        try store.withLock {
            let all = try dkimStore.selectors(domain)
            var chosen: [DKIMSelector] = []
            for name in o.operands.dropFirst() {
                guard let s = all.first(where: { $0.name == name }) else {
                    throw AdminError.refused("\(domain) has no selector \(name)")
                }
                if chosen.contains(where: { $0.algorithm == s.algorithm }) {
                    throw AdminError.refused("one selector per key type")
                }
                chosen.append(s)
            }
            // Key types not named keep signing with the key they had.
            let kept = all.filter { s in s.signing && !chosen.contains(where: { $0.algorithm == s.algorithm }) }
            try writeSigning(domain, (kept + chosen).map(\.name), owner)
        }
        return []
    }

    func dkimList(_ args: [String]) throws -> [String] {
        let usage = Self.dkimUsage
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count <= 1 else { throw AdminError.usage(usage) }
        let store = dkimStore
        let domains = try o.operands.first.map { [try dkimDomain($0)] } ?? store.domains()
        for d in domains {
            for s in try store.selectors(d) {
                var size = ""
                if let pem = try FileIO.read(store.keyPath(d, s.name, s.algorithm)), let k = try? DKIMKey(privatePEM: pem) {
                    size = " \(k.bits)"
                }
                print("\(d) \(s.name) \(s.algorithm.rawValue)\(size) \(s.signing ? "signing" : "standby")")
            }
        }
        return []
    }

    func dkimRemove(_ args: [String]) throws -> [String] {
        let usage = Self.dkimUsage
        let o = try Options(args, flags: "f", values: "", usage: usage)
        guard o.operands.count >= 1 else { throw AdminError.usage(usage) }
        let domain = try dkimDomain(o.operands[0])
        let store = dkimStore
        let owner = try dkimOwner()
        try self.store.withLock {
            let all = try store.selectors(domain)
            if all.isEmpty && !Sys.exists(store.domainDirectory(domain)) {
                throw AdminError.refused("\(domain) has no keys")
            }
            let names = Array(o.operands.dropFirst())
            if names.isEmpty {
                if all.contains(where: \.signing) && !o.flags.contains("f") {
                    throw AdminError.refused("\(domain) signs with these keys: give -f to remove them all")
                }
                try FileStore.removeTree(store.domainDirectory(domain))
                return
            }
            var gone: [DKIMSelector] = []
            for n in names {
                guard let s = all.first(where: { $0.name == n }) else { throw AdminError.refused("\(domain) has no selector \(n)") }
                if s.signing && !o.flags.contains("f") {
                    throw AdminError.refused("\(n) signs mail of \(domain): activate another key first, or give -f")
                }
                gone.append(s)
            }
            let signing = all.filter { s in s.signing && !gone.contains(s) }.map(\.name)
            try writeSigning(domain, signing, owner)
            for s in gone { try Sys.unlink(store.keyPath(domain, s.name, s.algorithm)) }
        }
        return []
    }

    func dkimDNS(_ args: [String]) throws -> [String] {
        let usage = Self.dkimUsage
        let o = try Options(args, flags: "", values: "", usage: usage)
        guard o.operands.count >= 1 else { throw AdminError.usage(usage) }
        for line in try dkimZoneLines(try dkimDomain(o.operands[0]), Array(o.operands.dropFirst())) { print(line) }
        return []
    }

    /// The zone lines of a domain's keys (all of them, or those `names`).
    func dkimZoneLines(_ domain: String, _ names: [String]) throws -> [String] {
        let store = dkimStore
        var chosen = try store.selectors(domain)
        if chosen.isEmpty { throw AdminError.refused("\(domain) has no keys") }
        if !names.isEmpty {
            for n in names where !chosen.contains(where: { $0.name == n }) { throw AdminError.refused("\(domain) has no selector \(n)") }
            chosen = chosen.filter { names.contains($0.name) }
        }
        var lines: [String] = []
        for s in chosen {
            guard let pem = try FileIO.read(store.keyPath(domain, s.name, s.algorithm)) else { continue }
            lines.append(try DKIMRecord.zoneLine(domain: domain, selector: s.name, key: try DKIMKey(privatePEM: pem)))
        }
        return lines
    }

    /// Every record a domain sending through this server publishes: an SPF
    /// record naming this host (control/me), the DKIM keys that sign, and a
    /// DMARC record to start with (p=none, reports to postmaster).
    func dkimRecords(_ args: [String]) throws -> [String] {
        guard args.count == 1 else { throw AdminError.usage(Self.dkimUsage) }
        for line in try dkimRecordLines(try dkimDomain(args[0])) { print(line) }
        return []
    }

    func dkimRecordLines(_ domain: String) throws -> [String] {
        let me = (try Control(home: home).me()).map { $0.string } ?? domain
        var lines = ["; SPF: the hosts that send mail for \(domain); add the others (ip4:, include:), then ~all -> -all",
                     "\(domain). IN TXT \"v=spf1 a:\(me) ~all\"",
                     "; DKIM: the keys qmail-remote signs with (vdkim dns \(domain))"]
        let signing = try dkimStore.selectors(domain).filter { $0.signing }.map { $0.name }
        if signing.isEmpty {
            lines.append("; (no signing key: vdkim create \(domain))")
        } else {
            lines += try dkimZoneLines(domain, signing)
        }
        lines.append("; DMARC: start with p=none, read the reports, then quarantine and reject")
        lines.append("_dmarc.\(domain). IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@\(domain)\"")
        return lines
    }

    /// vadddomain's part: both keys for a new domain, signing at once;
    /// the records to publish go to standard output.
    func dkimNewDomain(_ domain: [UInt8]) throws -> [String] {
        let d = try dkimDomain(domain.string)
        if !(try dkimStore.selectors(d)).isEmpty { return [] }
        return try dkimCreate([d], rotate: false)
    }
}
