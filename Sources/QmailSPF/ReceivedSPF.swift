// The Received-SPF trace field of RFC 7208 section 9.1: the result, a
// comment for people, then key=value pairs for programs.
import QmailNet

extension SPFVerdict {
    /// The whole header line (no CRLF) for mail from `sender` (empty: the HELO identity checked).
    public func receivedSPF(receiver: String, client: IPAddress, sender: String, helo: String) -> String {
        let who = sender.isEmpty ? "postmaster@" + helo : sender
        let comment: String
        switch result {
        case .pass: comment = "domain of \(who) designates \(client) as permitted sender"
        case .fail: comment = "domain of \(who) does not designate \(client) as permitted sender"
        case .softfail: comment = "domain of transitioning \(who) does not designate \(client) as permitted sender"
        case .neutral: comment = "\(client) is neither permitted nor denied by domain of \(who)"
        case .none: comment = "domain of \(who) does not publish SPF"
        case .temperror, .permerror: comment = "error in processing during lookup of \(who): \(detail)"
        }
        let clean = comment.map { $0 == "(" || $0 == ")" || $0 == "\\" || !$0.isASCII || $0 < " " ? "_" : $0 }
        var h = "Received-SPF: \(result.rawValue) (\(receiver): \(String(clean))) receiver=\(receiver);"
        h += " client-ip=\(client);"
        if !sender.isEmpty { h += " envelope-from=\"\(sender.filter { $0 != "\"" && $0 != "\\" })\";" }
        h += " helo=\(helo.filter { $0 > " " && $0 != ";" && $0.isASCII });"
        h += " identity=\(sender.isEmpty ? "helo" : "mailfrom");"
        return h
    }
}
