// Where the keys live, one directory per domain:
//
//   HOME/control/dkim/                     0700, owned by qmailr
//   HOME/control/dkim/DOMAIN/              0700, owned by qmailr
//   HOME/control/dkim/DOMAIN/SEL.rsa       PEM private key, 0600, qmailr
//   HOME/control/dkim/DOMAIN/SEL.ed25519   PEM private key, 0600, qmailr
//   HOME/control/dkim/DOMAIN/sign          the selectors that sign, one a line
//
// Keys not named in `sign` are kept for their DNS records (a rotated key
// whose record must stay published for mail still in transit, or a new
// one whose record is not published yet) until vdkim removes them.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct DKIMSelector: Sendable, Equatable {
    public let domain: String
    public let name: String
    public let algorithm: DKIMAlgorithm
    public let signing: Bool
}

public struct DKIMSigningKey {
    public let domain: String
    public let selector: String
    public let key: DKIMKey
}

public struct DKIMKeyStore {
    public let directory: String

    public init(home: QmailHome) { directory = home.path + "/control/dkim" }
    public init(directory: String) { self.directory = directory }

    public func domainDirectory(_ domain: String) -> String { directory + "/" + domain }
    public func keyPath(_ domain: String, _ selector: String, _ a: DKIMAlgorithm) -> String {
        domainDirectory(domain) + "/" + selector + a.fileSuffix
    }
    public func signPath(_ domain: String) -> String { domainDirectory(domain) + "/sign" }

    /// The selectors named in DOMAIN/sign; nil when the file does not exist.
    public func signingSelectors(_ domain: String) throws -> [String]? {
        guard let data = try FileIO.read(signPath(domain)) else { return nil }
        return Control.parseList(data).map { String(decoding: $0, as: UTF8.self) }.filter { DKIMSelectorName.isValid($0) }
    }

    /// The keys that sign mail whose From: domain is `fromDomain`: those of
    /// the domain itself or of its nearest parent that has a sign file.
    /// Empty when none; throws when a key that should sign cannot be read
    /// (a temporary problem: the mail waits rather than go out unsigned).
    public func signingKeys(for fromDomain: String) throws -> [DKIMSigningKey] {
        for d in DKIMDomain.withParents(fromDomain) {
            guard let selectors = try signingSelectors(d) else { continue }
            var keys: [DKIMSigningKey] = []
            for s in selectors {
                guard let (path, _) = existingKey(d, s) else { throw DKIMKeyError("no key file for selector \(s) of \(d)") }
                guard let pem = try FileIO.read(path) else { throw DKIMKeyError("cannot read \(path)") }
                keys.append(DKIMSigningKey(domain: d, selector: s, key: try DKIMKey(privatePEM: pem)))
            }
            return keys
        }
        return []
    }

    /// The key file of a selector, whichever type it is.
    public func existingKey(_ domain: String, _ selector: String) -> (String, DKIMAlgorithm)? {
        for a in DKIMAlgorithm.allCases {
            let p = keyPath(domain, selector, a)
            if Sys.exists(p) { return (p, a) }
        }
        return nil
    }

    /// The domains that have a key directory.
    public func domains() throws -> [String] {
        guard Sys.isDirectory(directory) else { return [] }
        return try Sys.listDirectory(directory).filter { DKIMDomain.normalize(Array($0.utf8)) == $0 }.sorted()
    }

    /// Every key of `domain`, sorted by selector.
    public func selectors(_ domain: String) throws -> [DKIMSelector] {
        let dir = domainDirectory(domain)
        guard Sys.isDirectory(dir) else { return [] }
        let signing = Set(try signingSelectors(domain) ?? [])
        var out: [DKIMSelector] = []
        for file in try Sys.listDirectory(dir) {
            for a in DKIMAlgorithm.allCases where file.hasSuffix(a.fileSuffix) {
                let name = String(file.dropLast(a.fileSuffix.count))
                if DKIMSelectorName.isValid(name) {
                    out.append(DKIMSelector(domain: domain, name: name, algorithm: a, signing: signing.contains(name)))
                }
            }
        }
        return out.sorted { $0.name < $1.name }
    }
}

public enum DKIMSelectorName {
    /// A selector is one DNS label here (letters, digits, '-').
    public static func isValid(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 63 && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
            && s.first != "-"
    }
}

public enum DKIMRecord {
    /// The TXT record of a key as a zone file line: the text split into
    /// strings of at most 255 bytes (one TXT string's limit).
    public static func zoneLine(domain: String, selector: String, key: DKIMKey) throws -> String {
        let text = "v=DKIM1; k=\(key.algorithm.keyType); p=" + (try key.publicKeyBase64())
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            parts.append("\"" + rest.prefix(255) + "\"")
            rest = rest.dropFirst(255)
        }
        return "\(selector)._domainkey.\(domain). IN TXT " + parts.joined(separator: " ")
    }
}
