// TXT lookups for DKIM keys and DMARC records, with the MX code's care:
// a name that does not exist (NXDOMAIN) or has no TXT record is an answer
// ("none"); a timeout or SERVFAIL is temporary and must never turn into a
// failed check (two such make the servers count as down for the message). Each message's checks share one budget of queries, and a
// record longer than 4 KB is treated as unusable, so a hostile sender
// cannot make one message cost unbounded DNS work or memory.
import QmailCore
import QmailDKIM
import QmailNet

public enum TXTAnswer: Equatable {
    /// The TXT records (each its strings joined), possibly none.
    case records([[UInt8]])
    /// No answer now: timeout, SERVFAIL, or the query budget spent.
    case temporary
}

public final class AuthDNS {
    let lookup: ([UInt8]) throws -> [DNSRecord]
    public var maxQueries: Int
    public private(set) var queries = 0
    public var maxRecordBytes = 4096
    private var cache: [String: TXTAnswer] = [:]
    private var unanswered = 0

    /// `resolver` asks the servers; at most `maxQueries` queries are sent.
    public convenience init(resolver: DNSResolver, maxQueries: Int = 30) {
        self.init(maxQueries: maxQueries) { try resolver.lookup($0, .txt) }
    }

    public init(maxQueries: Int = 30, lookup: @escaping ([UInt8]) throws -> [DNSRecord]) {
        self.lookup = lookup
        self.maxQueries = maxQueries
    }

    /// The TXT records of `name`, each at most maxRecordBytes long (longer
    /// ones are left out: a check treats them as not published).
    public func txt(_ name: String) -> TXTAnswer {
        let key = name.lowercased()
        if let hit = cache[key] { return hit }
        // After two queries went unanswered the servers are taken as down
        // for this message: the rest would only add their timeouts.
        guard queries < maxQueries, unanswered < 2 else { return .temporary }
        queries += 1
        let answer: TXTAnswer
        do {
            answer = .records(try lookup(Array(key.utf8)).compactMap { $0.text }.filter { $0.count <= maxRecordBytes })
        } catch DNSError.hard {
            answer = .records([])
        } catch {
            answer = .temporary
            unanswered += 1
        }
        cache[key] = answer
        return answer
    }

    /// The DKIM key record of (selector, domain), as DKIMVerifier asks.
    public func dkimKey(selector: String, domain: String) -> DKIMKeyAnswer {
        switch txt("\(selector)._domainkey.\(domain)") {
        case .temporary: return .temporary
        case .records(let r):
            // Several records: RFC 6376 3.6.2.2 lets a verifier pick; take the first that parses as text.
            guard let first = r.first else { return .none }
            return .record(String(decoding: first, as: UTF8.self))
        }
    }
}
