// A DMARC policy record (RFC 7489 section 6.3): "v=DMARC1; p=...; ..." at
// _dmarc.<domain>. Only the tags that decide a verdict are kept; unknown
// tags are ignored as the RFC asks.
import QmailCore

public enum DMARCPolicy: String {
    case none, quarantine, reject
}

public struct DMARCRecord: Equatable {
    public var policy: DMARCPolicy = .none
    public var subdomainPolicy: DMARCPolicy? = nil
    public var percent = 100
    public var strictDKIM = false
    public var strictSPF = false
    /// psd=y: the name is a public suffix (DMARCbis), so its children are
    /// organizational domains.
    public var publicSuffix = false

    /// nil when the text is not a DMARC record (v=DMARC1 must come first).
    public init?(_ text: [UInt8]) {
        let parts = String(decoding: text, as: UTF8.self).split(separator: ";").map {
            $0.trimmingCharacters(in: " \t\r\n")
        }
        guard let first = parts.first, first.filter({ $0 != " " && $0 != "\t" }) == "v=DMARC1" else { return nil }
        for part in parts.dropFirst() {
            guard let eq = part.firstIndex(of: "=") else { continue }
            let name = part[..<eq].trimmingCharacters(in: " \t").lowercased()
            let value = part[part.index(after: eq)...].trimmingCharacters(in: " \t").lowercased()
            switch name {
            case "p":  // missing or unknown: p=none (RFC 7489 6.6.3)
                policy = DMARCPolicy(rawValue: value) ?? .none
            case "sp": subdomainPolicy = DMARCPolicy(rawValue: value)
            case "pct": if let n = Int(value), (0...100).contains(n) { percent = n }
            case "adkim": strictDKIM = value == "s"
            case "aspf": strictSPF = value == "s"
            case "psd": publicSuffix = value == "y"
            default: break
            }
        }
    }
}
