// The heart of qmail-inject: reads the header field by field, rewrites
// address lists (qmail-header(5)), drops Bcc, Resent-Bcc, Return-Path and
// Content-Length, collects header recipients, and builds the fields qmail
// adds (Date, Message-ID, From, Cc or their Resent- forms, Mail-Followup-To).
// The header is held in memory up to `headerLimit` bytes; the body is not
// held at all (the caller streams it).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Where header lines come from; ByteReader in the program, arrays in tests.
public protocol LineSource: AnyObject {
    func line(delimiter: UInt8, limit: Int) throws -> (bytes: [UInt8], overflow: Bool)?
}

extension ByteReader: LineSource {}

/// How the header ended and what the body starts with.
public enum HeaderEnd: Equatable, Sendable {
    /// End of input inside the header: no body.
    case endOfInput
    /// The body starts with these bytes (the blank line, or a blank line
    /// qmail inserts before a line that is not a header field).
    case body([UInt8])
}

public final class Injector {
    public static let defaultHeaderLimit = 2 << 20

    let settings: InjectSettings
    let domains: InjectDomains
    let rewriter: AddressRewriter
    let options: InjectOptions
    let startTime: Int
    let pid: Int32
    let headerLimit: Int

    /// The envelope sender once known (-f, Return-Path, or the default).
    public private(set) var sender: [UInt8]?
    var argRecipients: [[UInt8]] = []
    var headerRecipients: [[UInt8]] = []        // To, Cc, Bcc, Apparently-To
    var resentRecipients: [[UInt8]] = []        // Resent-To, Resent-Cc, Resent-Bcc
    var toCcRecipients: [[UInt8]] = []
    var seen = Set<HeaderField>()
    var saved: [[UInt8]] = []
    public private(set) var isResent = false

    public init(settings: InjectSettings, domains: InjectDomains, options: InjectOptions,
                startTime: Int = Sys.now(), pid: Int32 = getpid(), headerLimit: Int = Injector.defaultHeaderLimit) throws {
        self.settings = settings
        self.domains = domains
        self.rewriter = try AddressRewriter(domains)
        self.options = options
        self.startTime = startTime
        self.pid = pid
        self.headerLimit = headerLimit

        if let f = options.sender {
            if f.isEmpty || f == "<>" {
                sender = []  // the null sender: bounces are not wanted
            } else {
                let quoted = Address.quote(Array(f.utf8))
                guard var t = Token822Parser.parse(quoted) else { throw InjectFailure.unparsable(quoted) }
                rewriter.rewrite(&t)
                sender = Token822Parser.unquote(t)
            }
        }
        var strategy = options.strategy
        if strategy == .argsElseHeader { strategy = options.recipients.isEmpty ? .header : .args }
        if strategy != .header {
            for r in options.recipients {
                guard var t = Token822Parser.parse(Address.quote(Array(r.utf8))) else { throw InjectFailure.badAddress(r) }
                rewriter.rewrite(&t)
                argRecipients.append(Token822Parser.unquote(t))
            }
        }
        useHeaderRecipients = strategy != .args
    }

    let useHeaderRecipients: Bool

    /// The envelope recipients: arguments first, then header recipients.
    public var recipients: [[UInt8]] {
        guard useHeaderRecipients else { return argRecipients }
        return argRecipients + (isResent ? resentRecipients : headerRecipients)
    }

    // MARK: header input

    /// Reads header lines until the header ends, processing each field.
    public func readHeader(_ source: LineSource) throws -> HeaderEnd {
        var current: [UInt8] = []   // the field being assembled, when inField
        var inField = false
        var used = 0
        while true {
            let got: (bytes: [UInt8], overflow: Bool)?
            do { got = try source.line(delimiter: Ascii.lf, limit: headerLimit - used + 1) } catch { throw InjectFailure.readError }
            guard let (raw, overflow) = got else {
                if inField { try field(current) }
                return .endOfInput
            }
            if overflow {
                // Too long for the header: fail unless the line is plainly body.
                let continuation = inField && (raw.first == Ascii.space || raw.first == Ascii.tab)
                if continuation || raw.hasPrefix(Injector.mboxFrom) || HeaderField.nameState(raw) != .invalid {
                    throw InjectFailure.headerTooLarge(headerLimit)
                }
                if inField { try field(current) }
                return .body([Ascii.lf] + raw)
            }
            var line = raw
            if line.last != Ascii.lf { line.append(Ascii.lf) }
            // Accept CRLF header lines: the queue's format is bare LF.
            if line.count >= 2 && line[line.count - 2] == Ascii.cr { line.remove(at: line.count - 2) }
            if inField {
                if line.first == Ascii.space || line.first == Ascii.tab {
                    current.append(contentsOf: line)
                    used += raw.count
                    continue
                }
                inField = false
                try field(current)
            }
            if line.count == 1 { return .body([Ascii.lf]) }
            if line.hasPrefix(Injector.mboxFrom) {
                current = Array("MBOX-Line: ".utf8) + line
            } else if HeaderField.valid(line) {
                current = line
            } else {
                return .body([Ascii.lf] + raw)
            }
            inField = true
            used += raw.count
        }
    }

    static let mboxFrom = Array("From ".utf8)

    private enum ListKind { case toCc, header, resent, sender, returnPath }

    /// One complete header field (with its folded lines and final newline).
    public func field(_ input: [UInt8]) throws {
        var h = input
        let kind = HeaderField.known(h)
        if settings.deleteFrom && kind == .from { return }
        if settings.deleteMessageID && kind == .messageID { return }
        if settings.deleteReturnPath && kind == .returnPath { return }
        if let kind {
            seen.insert(kind)
        } else if !HeaderField.valid(h) {
            throw InjectFailure("invalid header field: " + h.string, .permanent)
        }
        var list: ListKind? = nil
        switch kind {
        case .to, .cc: list = .toCc
        case .bcc, .apparentlyTo: list = .header
        case .resentTo, .resentCc, .resentBcc: list = .resent
        case .returnPath: list = .returnPath
        case .sender, .from, .replyTo, .returnReceiptTo, .errorsTo, .resentSender, .resentFrom, .resentReplyTo:
            list = .sender
        default: break
        }
        if let list {
            // Recipient fields that do not parse are passed on unchanged;
            // a sender field that does not parse is fatal, as in qmail.
            let mayFail = list == .toCc || list == .header || list == .resent
            if let rewritten = rewriteField(h, list) {
                h = Injector.keepFolded(rewritten)
            } else if !mayFail {
                throw InjectFailure.unparsable(h)
            }
        }
        switch kind {
        case .bcc, .resentBcc, .returnPath, .contentLength: return
        default: saved.append(h)
        }
    }

    /// A rewritten field stays one field: a line break inside it (a
    /// quoted-pair can escape the LF that ended an input line) is followed
    /// by a space, so it cannot start a line that is no field at all.
    static func keepFolded(_ h: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(h.count + 4)
        for (i, b) in h.enumerated() {
            out.append(b)
            if b == Ascii.lf, i + 1 < h.count, h[i + 1] != Ascii.space, h[i + 1] != Ascii.tab {
                out.append(Ascii.space)
            }
        }
        return out
    }

    private func rewriteField(_ h: [UInt8], _ list: ListKind) -> [UInt8]? {
        guard let tokens = Token822Parser.parse(h) else { return nil }
        let out = Token822Parser.addressList(tokens) { addr in
            rewriter.rewrite(&addr)
            switch list {
            case .toCc:
                let a = Token822Parser.unquote(addr)
                headerRecipients.append(a)
                toCcRecipients.append(a)
            case .header: headerRecipients.append(Token822Parser.unquote(addr))
            case .resent: resentRecipients.append(Token822Parser.unquote(addr))
            case .returnPath: setReturn(addr)
            case .sender: break
            }
        }
        guard let out else { return nil }
        return Token822Parser.unparse(out)
    }

    private func setReturn(_ addr: [Token822]) {
        if sender != nil { return }
        var s = Token822Parser.unquote(addr)
        if settings.verpRecipient { s += Array("-@[]".utf8) }
        sender = s
    }

    // MARK: new fields

    /// Runs once the header is read: settles the envelope sender, checks
    /// recipients (when queueing) and returns the header to write.
    public func finishHeader() throws -> [UInt8] {
        isResent = seen.contains { $0.isResent }
        if sender == nil { try defaultReturnPath() }
        let envelopeSender = sender ?? []
        if options.queue {
            let r = recipients
            if r.isEmpty { throw InjectFailure.noRecipients }
            for a in [envelopeSender] + r where a.contains(0) { throw InjectFailure.nulInAddress(a) }
            // A quoted-pair can escape the LF that ends a field ("x"\<LF>);
            // an envelope address with a line break would split log lines.
            for a in [envelopeSender] + r where a.contains(Ascii.lf) || a.contains(Ascii.cr) {
                throw InjectFailure.badAddress(a.map { $0 == Ascii.lf || $0 == Ascii.cr ? UInt8(ascii: "?") : $0 }.string)
            }
        }
        var out: [UInt8] = []
        if !options.queue {
            out += Array("Return-Path: <".utf8) + Address.quote(envelopeSender) + Array(">\n".utf8)
        }
        if isResent {
            let resent = Array("Resent-".utf8)
            if !seen.contains(.resentDate) { out += resent + dateField() }
            if !seen.contains(.resentMessageID) { out += resent + messageIDField() }
            if !seen.contains(.resentFrom) { out += resent + (try defaultFrom()) }
            if !seen.contains(.resentTo) && !seen.contains(.resentCc) {
                out += Array("Resent-Cc: recipient list not shown: ;\n".utf8)
            }
        } else {
            if !seen.contains(.date) { out += dateField() }
            if !seen.contains(.messageID) { out += messageIDField() }
            if !seen.contains(.from) { out += try defaultFrom() }
            if !seen.contains(.to) && !seen.contains(.cc) {
                out += Array("Cc: recipient list not shown: ;\n".utf8)
            }
            out += mailFollowupTo()
        }
        for h in saved { out += h }
        saved = []
        return out
    }

    func dateField() -> [UInt8] {
        Array("Date: \(Date822.qmail(startTime))\n".utf8)
    }

    /// "Message-ID: <YYYYMMDDHHMMSS.pid.qmail@idhost>", the time in UTC.
    func messageIDField() -> [UInt8] {
        var tt = time_t(startTime)
        var tm = Glibc.tm()
        gmtime_r(&tt, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let stamp = pad(tm.tm_year + 1900, 4) + pad(tm.tm_mon + 1, 2) + pad(tm.tm_mday, 2)
            + pad(tm.tm_hour, 2) + pad(tm.tm_min, 2) + pad(tm.tm_sec, 2)
        return Array("Message-ID: <\(stamp).\(pid).qmail@".utf8) + domains.idHost + Array(">\n".utf8)
    }

    /// Builds a field from tokens, then parses and rewrites it like any
    /// incoming field, as qmail does (so defaults apply to it too).
    private func buildField(_ t: [Token822], _ list: ListKind) throws -> [UInt8] {
        let text = Token822Parser.unparse(t)
        guard let out = rewriteField(text, list) else { throw InjectFailure.unparsable(text) }
        return out
    }

    func defaultFrom() throws -> [UInt8] {
        var t = [Token822(.atom, Array("From".utf8)), Token822(.colon)]
        let name = settings.fullName
        if let name, !settings.nameComment { t += [Token822(.quote, name), Token822(.left)] }
        t.append(Token822(Address.needsQuoting(settings.mailUser) ? .quote : .atom, settings.mailUser))
        if let host = settings.mailHost { t += [Token822(.at), Token822(.atom, host)] }
        if let name {
            t.append(settings.nameComment ? Token822(.comment, name) : Token822(.right))
        }
        return try buildField(t, .sender)
    }

    /// The default envelope sender, QMAILSUSER@QMAILSHOST or the From
    /// parts, with the per-message ('m') and per-recipient ('r') VERP marks.
    func defaultReturnPath() throws {
        var user = settings.returnUser
        if settings.verpMessage { user += Array("-\(startTime).\(pid)".utf8) }
        if settings.verpRecipient { user.append(Ascii.minus) }
        var t = [Token822(.atom, Array("Return-Path".utf8)), Token822(.colon), Token822(.quote, user)]
        if let host = settings.returnHost { t += [Token822(.at), Token822(.atom, host)] }
        _ = try buildField(t, .returnPath)
    }

    /// Mail-Followup-To with every To and Cc address, when one of them is
    /// a mailing list from QMAILMFTFILE and the field is not there yet.
    func mailFollowupTo() -> [UInt8] {
        guard let lists = settings.mailingLists, !seen.contains(.mailFollowupTo) else { return [] }
        guard toCcRecipients.contains(where: { lists.contains($0.lowercasedASCII()) }) else { return [] }
        var out = Array("Mail-Followup-To: ".utf8)
        for (i, a) in toCcRecipients.reversed().enumerated() {
            if i > 0 { out += Array(",\n  ".utf8) }
            out += Address.quote(a)
        }
        out.append(Ascii.lf)
        return out
    }
}
