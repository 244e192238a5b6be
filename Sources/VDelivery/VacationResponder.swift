// The vacation responder (RFC 3834): after a message is delivered, answers
// its envelope sender with the mailbox's vacation text, at most once per
// sender per interval, and never where an answer would go to a machine, a
// list or back to ourselves. The answer is queued through qmail-queue with
// the null envelope sender, so whatever answers it bounces nowhere.
//
// Nothing here may fail the delivery it follows: the message is already
// in the Maildir, and a deferral would deliver it again. Every failure is
// reported as a note and the delivery stays a success.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import UserDirectory

public struct VacationResponder {
    public let home: QmailHome
    /// The mailbox's directory: its .vacation and .vacation.replied.
    public let directory: String
    public let settings: VacationSettings
    /// The address mail was delivered to: the answer's From.
    public let address: [UInt8]
    /// Every address of the mailbox (lowercased): `address`, the other
    /// forms it was reached by, and the settings' own list.
    public let ownAddresses: [[UInt8]]
    public let now: Int

    /// Bytes of the original header looked at; the rest is ignored.
    static let headerLimit = 64 * 1024

    public init(home: QmailHome, directory: String, settings: VacationSettings, address: [UInt8],
                otherAddresses: [[UInt8]] = [], now: Int = Sys.now()) {
        self.home = home
        self.directory = directory
        self.settings = settings
        self.address = address
        var own: [[UInt8]] = []
        for a in [address] + otherAddresses + settings.addresses.map({ Array($0.utf8) }) {
            let l = a.lowercasedASCII()
            if !l.isEmpty && !own.contains(l) { own.append(l) }
        }
        self.ownAddresses = own
        self.now = now
    }

    public enum Decision: Equatable {
        case answer
        case skip(String)
    }

    // MARK: whether to answer

    /// Local parts that belong to machines and lists, never to a person
    /// on the other side (RFC 3834 section 2, and what BSD vacation skips).
    static let machineLocals: Set<String> = ["mailer-daemon", "mailer", "postmaster", "listserv", "majordomo",
                                              "noreply", "no-reply", "donotreply", "do-not-reply", "nobody"]
    static let machinePrefixes = ["owner-", "bounce"]
    static let machineSuffixes = ["-request", "-owner", "-bounces", "-bounce", "-errors"]

    /// Whether `sender` (the envelope sender) gets an answer to a message
    /// with this header. Pure: the once-per-interval record is apart.
    public func decide(sender: [UInt8], header: [UInt8]) -> Decision {
        if !settings.isActive(at: now) { return .skip("not on vacation now") }
        if sender.isEmpty || sender == Array("#@[]".utf8) { return .skip("null sender") }
        if sender.contains(where: { $0 < Ascii.space || $0 == 127 || $0 == UInt8(ascii: ">") || $0 == UInt8(ascii: "<") }) {
            return .skip("unusable sender")
        }
        let s = sender.lowercasedASCII()
        let (local, domain) = Address.split(s)
        guard let domain, !domain.isEmpty, !local.isEmpty else { return .skip("sender without a domain") }
        if ownAddresses.contains(s) { return .skip("mail from ourselves") }
        let l = local.string
        // ezmlm's and others' VERP return paths: list-return-N-user=host@...
        if VacationResponder.machineLocals.contains(l) || l.contains("-return-")
            || VacationResponder.machinePrefixes.contains(where: { l.hasPrefix($0) })
            || VacationResponder.machineSuffixes.contains(where: { l.hasSuffix($0) }) {
            return .skip("sender \(l) is a machine or a list")
        }
        let fields = MessageHeader.fields(Array(header.prefix(VacationResponder.headerLimit)))
        var addressed = false
        for (name, value) in fields {
            let n = name.string
            let v = value.lowercasedASCII()
            // List-Id, List-Post, List-Unsubscribe...; ezmlm's Mailing-List
            if n.hasPrefix("list-") || n == "mailing-list" || n == "x-mailing-list" {
                return .skip("mail from a list (\(n))")
            }
            switch n {
            case "precedence":
                let p = v.trimmingTrailing { $0 == Ascii.space }.string
                if ["bulk", "list", "junk"].contains(p) { return .skip("precedence \(p)") }
            case "auto-submitted":
                let kind = v.prefix { $0 != UInt8(ascii: ";") && $0 != Ascii.space && $0 != Ascii.tab }
                if Array(kind) != Array("no".utf8) { return .skip("auto-submitted mail") }
            case "x-auto-response-suppress":
                // Microsoft's request: "OOF" or "All" means no out-of-office reply
                if v.string.contains("oof") || v.string.contains("all") { return .skip("auto-response suppressed") }
            case "to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc":
                if !addressed { addressed = ownAddresses.contains { VacationResponder.names(v, $0) } }
            default:
                break
            }
        }
        if settings.onlyWhenAddressed && !addressed { return .skip("not addressed to this mailbox in To or Cc") }
        return .answer
    }

    /// True when the (lowercased) field value names `address` as a whole
    /// address, not as part of a longer one (bob@x is not in jimbob@x.org).
    static func names(_ value: [UInt8], _ address: [UInt8]) -> Bool {
        guard !address.isEmpty, value.count >= address.count else { return false }
        func partOfAddress(_ c: UInt8) -> Bool {
            !(c == Ascii.space || c == Ascii.tab || c == UInt8(ascii: "<") || c == UInt8(ascii: ">") || c == UInt8(ascii: ",")
              || c == UInt8(ascii: ";") || c == UInt8(ascii: ":") || c == UInt8(ascii: "(") || c == UInt8(ascii: ")") || c == 34)
        }
        var i = 0
        while i + address.count <= value.count {
            if value[i] == address[0], Array(value[i..<(i + address.count)]) == address,
               i == 0 || !partOfAddress(value[i - 1]),
               i + address.count == value.count || !partOfAddress(value[i + address.count]) {
                return true
            }
            i += 1
        }
        return false
    }

    // MARK: the answer

    /// The answer to a message with this header, as queued.
    public func answer(to sender: [UInt8], header: [UInt8]) -> [UInt8] {
        let fields = MessageHeader.fields(Array(header.prefix(VacationResponder.headerLimit)))
        func field(_ name: String) -> [UInt8]? { fields.first { $0.name == Array(name.utf8) }?.value }
        var subject: [UInt8]
        if settings.subject.isEmpty {
            let original = field("subject").map { Array($0.prefix(200)) } ?? []
            subject = Array("Auto: ".utf8) + (original.isEmpty ? Array("your message".utf8) : original)
        } else {
            subject = VacationResponder.encodedWord(settings.subject)
        }
        subject = subject.map { $0 == Ascii.cr || $0 == Ascii.lf ? Ascii.space : $0 }
        let idHost = Address.split(address).domain ?? Array("localhost".utf8)
        var out = Array("From: <".utf8) + Address.quote(address) + Array(">\n".utf8)
        out += Array("To: <".utf8) + Address.quote(sender) + Array(">\n".utf8)
        out += Array("Subject: ".utf8) + subject + [Ascii.lf]
        out += Array("Date: \(Date822.qmail(now))\n".utf8)
        out += Array("Message-ID: <\(now).\(getpid()).vacation@".utf8) + idHost + Array(">\n".utf8)
        if let id = field("message-id"), VacationResponder.isMessageId(id) {
            out += Array("In-Reply-To: ".utf8) + id + [Ascii.lf]
            var refs = field("references") ?? []
            if !VacationResponder.isMessageIdList(refs) { refs = [] }
            // the last few references and the original's own id (RFC 5322 3.6.4)
            let kept = refs.split(separator: Ascii.space).suffix(10).map(Array.init)
            out += Array("References: ".utf8) + Array((kept + [id]).joined(separator: [Ascii.space])) + [Ascii.lf]
        }
        out += Array("Auto-Submitted: auto-replied\n".utf8)
        out += Array("MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n".utf8)
        var body = Array(settings.body.utf8)
        if body.last != Ascii.lf { body.append(Ascii.lf) }
        if body.allSatisfy({ $0 < 128 }) {
            out += Array("Content-Transfer-Encoding: 7bit\n\n".utf8) + body
        } else {
            out += Array("Content-Transfer-Encoding: base64\n\n".utf8)
            let b64 = Base64.encode(body)
            var i = 0
            while i < b64.count {
                out += b64[i..<min(i + 76, b64.count)] + [Ascii.lf]
                i += 76
            }
        }
        return out
    }

    /// The subject as it may stand in a header: ASCII as it is, anything
    /// else as one RFC 2047 encoded word per 45 bytes of UTF-8.
    static func encodedWord(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        if b.allSatisfy({ $0 >= 32 && $0 < 127 }) { return b }
        var words: [[UInt8]] = []
        var chunk: [UInt8] = []
        for scalar in s.unicodeScalars {
            let u = Array(String(scalar).utf8)
            if chunk.count + u.count > 45 { words.append(chunk); chunk = [] }
            chunk += u
        }
        if !chunk.isEmpty { words.append(chunk) }
        let encoded = words.map { Array("=?UTF-8?B?".utf8) + Base64.encode($0) + Array("?=".utf8) }
        return Array(encoded.joined(separator: Array("\n ".utf8)))
    }

    static func isMessageId(_ v: [UInt8]) -> Bool {
        v.count <= 998 && v.first == UInt8(ascii: "<") && v.last == UInt8(ascii: ">") && v.allSatisfy { $0 > Ascii.space && $0 < 127 }
    }

    static func isMessageIdList(_ v: [UInt8]) -> Bool {
        v.split(separator: Ascii.space).allSatisfy { isMessageId(Array($0)) }
    }

    // MARK: once per sender per interval, and the queue

    /// The senders answered lately: one record per sender, alive for the
    /// interval; a bounded table (24 kB) whatever the traffic.
    var replied: RecordTable {
        RecordTable(directory: directory, file: VacationMailbox.repliedFile, slots: 1024,
                    maxAhead: (VacationSettings.maxIntervalDays + 1) * 86400)
    }

    /// Decides, and answers when it should: the record is checked and
    /// written under its lock around the queueing, so two deliveries at
    /// once answer once. Returns nil, or a note saying why nothing was
    /// sent when something went wrong (not when it was right to be quiet).
    public func respond(sender: [UInt8], header: [UInt8]) -> String? {
        guard case .answer = decide(sender: sender, header: header) else { return nil }
        let key = RecordTable.hash(sender.lowercasedASCII())
        let table = replied
        let result: String?? = table.withLocked { fd in
            let (slot, live) = table.find(fd, key, now: now)
            if live != nil { return nil }
            if let f = queue(answer(to: sender, header: header), to: sender) { return "unable to queue the reply: \(f)" }
            table.write(fd, slot, .init(key: key, deadline: now + settings.intervalDays * 86400, value: now))
            return nil
        }
        guard let result else { return "unable to open \(table.path): \(Sys.strerror(errno)); no reply sent" }
        return result
    }

    /// Queues the message from the null sender to `recipient`.
    func queue(_ message: [UInt8], to recipient: [UInt8]) -> MailFailure? {
        let q: QueueClient
        do { q = try QueueClient(program: QueueClient.program(home: home, honourEnvironment: true)) } catch let f as MailFailure {
            return f
        } catch { return .temporary("\(error)") }
        q.put(message)
        q.from([])
        q.to(recipient)
        return q.close()
    }

    // MARK: the two ways in

    /// Reads the header of the message on `fd` from its start (at most
    /// headerLimit bytes).
    public static func readHeader(_ reader: ByteReader) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < headerLimit, let (l, _) = try? reader.line(limit: 8192) {
            if l == [Ascii.lf] || l == [Ascii.cr, Ascii.lf] { break }
            out += l
        }
        return out
    }

    /// The whole responder for one delivered message: loads the mailbox's
    /// settings (absent or off: nothing, quietly) and answers. Never throws;
    /// returns a note for the delivery's log when something went wrong.
    public static func run(home: QmailHome, directory: String, address: [UInt8], otherAddresses: [[UInt8]],
                           sender: [UInt8], header: () -> [UInt8]) -> String? {
        let settings: VacationSettings
        do {
            guard let s = try VacationMailbox.loadIfPresent(directory: directory) else { return nil }
            settings = s
        } catch {
            return "vacation: unable to read \(directory)/\(VacationMailbox.fileName): \(error); no reply sent"
        }
        let r = VacationResponder(home: home, directory: directory, settings: settings, address: address,
                                  otherAddresses: otherAddresses)
        if !settings.isActive(at: r.now) { return nil }
        return r.respond(sender: sender, header: header()).map { "vacation: " + $0 }
    }
}

extension VDeliver {
    /// After a hosted mailbox's delivery: its vacation answer, if it is
    /// away. A failure is reported on stderr (qmail-local's report) and
    /// the delivery stays a success.
    func answerVacation(_ m: Mailbox) {
        var others: [[UInt8]] = []
        if let (user, domain) = recipientParts() { others.append(user + [Ascii.at] + domain) }
        if m.login.contains(Ascii.at) { others.append(m.login) }
        let note = VacationResponder.run(home: home, directory: m.home, address: deliveredTo, otherAddresses: others,
                                         sender: env("SENDER") ?? []) {
            guard let r = try? message.reader() else { return [] }
            return VacationResponder.readHeader(r)
        }
        if let note { Sys.warn(note) }
    }
}

extension VacationResponder {
    /// qmail-vacation: the responder for a system account, run from its
    /// ~/.qmail by qmail-local with the delivered message on stdin and
    /// qmail-local's environment (SENDER, RECIPIENT, USER, HOST, HOME).
    /// argv[1], if given, names the directory of .vacation instead of HOME.
    /// Exits 0 whatever happens: the message is delivered already, and a
    /// deferral would deliver it again (a failure is a note on stderr).
    public static func programMain(_ argv: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard let recipient = Sys.getenv("RECIPIENT"), let sender = Sys.getenv("SENDER") else {
            Sys.warn("qmail-vacation: RECIPIENT and SENDER must be set (run me from .qmail); no reply sent")
            return 0
        }
        let directory = argv.count > 1 ? argv[1] : (Sys.getenv("HOME") ?? ".")
        var others: [[UInt8]] = []
        if let user = Sys.getenv("USER"), let host = Sys.getenv("HOST") { others.append(Array("\(user)@\(host)".utf8)) }
        let note = run(home: QmailHome.current(), directory: directory, address: Array(recipient.utf8),
                       otherAddresses: others, sender: Array(sender.utf8)) {
            if lseek(0, 0, SEEK_SET) != 0 && errno != ESPIPE { return [] }
            return readHeader(ByteReader(fd: 0, capacity: 8192))
        }
        if let note { Sys.warn("qmail-\(note)") }
        return 0
    }
}
