// SRS on intake: a recipient at our SRS domain (control/srsdomain) whose
// local part is an SRS0/SRS1 address must verify with qmail-srs (hash and
// age) before RCPT is accepted; forged, badly hashed or expired ones get
// 550 (#5.7.1) and are never queued or relayed. A helper that cannot
// answer gives 451: the sender retries. Other addresses at that domain
// (postmaster) pass untouched.
import QmailCore

public struct SRSIntake: Sendable {
    public let home: QmailHome
    public let domain: [UInt8]

    /// nil when SRS is off (no control/srsdomain).
    public static func load(home: QmailHome) throws -> SRSIntake? {
        guard let d = try Control(home: home).line(SRSHelper.domainFile), !d.isEmpty else { return nil }
        return SRSIntake(home: home, domain: d.lowercasedASCII())
    }

    /// The refusal for `address`, or nil when it is not ours to check or verifies.
    public func refusal(_ address: [UInt8]) -> String? {
        guard let at = address.lastIndex(of: Ascii.at),
              Array(address[(at + 1)...]).lowercasedASCII() == domain, SRS.isSRS(address) else { return nil }
        switch SRSHelper.call(home, "reverse", address) {
        case .success: return nil
        case .failure(let f) where !f.isTemporary:
            return SMTPReply.srsForged
        case .failure:
            return SMTPReply.srsUnverified
        }
    }
}

extension SMTPServer {
    func srsRefusal(_ target: [UInt8]) -> String? {
        config.srs?.refusal(target)
    }
}
