// Header field names qmail-inject knows (qmail-header(5)), matched without
// regard to case, with optional spaces or tabs before the colon.

import QmailCore

public enum HeaderField: CaseIterable, Sendable {
    case sender, from, replyTo, to, cc, bcc, date, messageID, subject
    case resentSender, resentFrom, resentReplyTo, resentTo, resentCc, resentBcc, resentDate, resentMessageID
    case returnReceiptTo, errorsTo, apparentlyTo, received, returnPath, deliveredTo
    case contentLength, contentType, contentTransferEncoding, noticeRequestedUponDeliveryTo, mailFollowupTo

    public var name: String {
        switch self {
        case .sender: return "sender"
        case .from: return "from"
        case .replyTo: return "reply-to"
        case .to: return "to"
        case .cc: return "cc"
        case .bcc: return "bcc"
        case .date: return "date"
        case .messageID: return "message-id"
        case .subject: return "subject"
        case .resentSender: return "resent-sender"
        case .resentFrom: return "resent-from"
        case .resentReplyTo: return "resent-reply-to"
        case .resentTo: return "resent-to"
        case .resentCc: return "resent-cc"
        case .resentBcc: return "resent-bcc"
        case .resentDate: return "resent-date"
        case .resentMessageID: return "resent-message-id"
        case .returnReceiptTo: return "return-receipt-to"
        case .errorsTo: return "errors-to"
        case .apparentlyTo: return "apparently-to"
        case .received: return "received"
        case .returnPath: return "return-path"
        case .deliveredTo: return "delivered-to"
        case .contentLength: return "content-length"
        case .contentType: return "content-type"
        case .contentTransferEncoding: return "content-transfer-encoding"
        case .noticeRequestedUponDeliveryTo: return "notice-requested-upon-delivery-to"
        case .mailFollowupTo: return "mail-followup-to"
        }
    }

    private static let table: [(HeaderField, [UInt8])] = allCases.map { ($0, Array($0.name.utf8)) }

    /// The known field a header line starts with, if any.
    public static func known(_ field: [UInt8]) -> HeaderField? {
        for (f, name) in table where matches(field, name) { return f }
        return nil
    }

    private static func matches(_ s: [UInt8], _ name: [UInt8]) -> Bool {
        if s.count <= name.count { return false }
        for (i, c) in name.enumerated() where Ascii.lower(s[i]) != c { return false }
        var i = name.count
        while i < s.count {
            let c = s[i]
            if c == Ascii.colon { return true }
            if c != Ascii.space && c != Ascii.tab { return false }
            i += 1
        }
        return false
    }

    /// True when `line` starts like a header field: a non-empty name of
    /// printable non-space bytes, optional spaces or tabs, then a colon.
    public static func valid(_ line: some Collection<UInt8>) -> Bool {
        nameState(line) == .valid
    }

    enum NameState { case valid, invalid, undecided }

    /// Like `valid`, but for a prefix of a line: `.undecided` when no colon
    /// has been seen and nothing rules a header field out yet.
    static func nameState(_ line: some Collection<UInt8>) -> NameState {
        var nameLen = 0
        var trailingBlanks = 0
        for c in line {
            if c == Ascii.colon {
                return nameLen - trailingBlanks > 0 && trailingBlanks <= nameLen ? .valid : .invalid
            }
            if c == Ascii.space || c == Ascii.tab {
                if nameLen == 0 { return .invalid }
                trailingBlanks += 1
                nameLen += 1
                continue
            }
            if trailingBlanks > 0 { return .invalid }  // blank inside the name
            if c <= 32 || c >= 127 { return .invalid }
            nameLen += 1
        }
        return .undecided
    }

    public var isResent: Bool {
        switch self {
        case .resentSender, .resentFrom, .resentReplyTo, .resentTo, .resentCc, .resentBcc, .resentDate, .resentMessageID:
            return true
        default: return false
        }
    }
}
