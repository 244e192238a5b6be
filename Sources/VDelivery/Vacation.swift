// The vacation (out-of-office) settings of one mailbox and where they are
// kept. Both sides reach them through this file: delivery (vdelivermail,
// qmail-local's in-process run of it, and qmail-vacation) reads them; the
// admin side (vvacation, the web application) writes them.
//
// A mailbox's settings are the file MAILBOXDIR/.vacation, written
// atomically and owned by the mailbox's uid; the senders already answered
// are MAILBOXDIR/.vacation.replied (VacationResponder; forgotten when
// the vacation is turned on again). A hosted mailbox
// needs nothing else: vdelivermail answers after each delivery while the
// file says "enabled". A system account's mail is read by qmail-local, so
// its ~/.qmail also gets one line "|HOME/bin/qmail-vacation" while the
// vacation is on, and loses exactly that line when it is turned off
// (qmailadmin's old fault was a line left behind that kept answering or
// delivered twice).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailLocal
import UserDirectory

/// A day in UTC, counted from 1970-01-01; written "YYYY-MM-DD".
public struct VacationDay: Equatable, Comparable, Sendable, CustomStringConvertible {
    public var daysSinceEpoch: Int

    public init(daysSinceEpoch: Int) { self.daysSinceEpoch = daysSinceEpoch }

    /// The UTC day that holds the time `t` (seconds since the epoch).
    public init(containing t: Int) { daysSinceEpoch = t >= 0 ? t / 86400 : (t - 86399) / 86400 }

    /// "YYYY-MM-DD" (years 1970 to 9999); nil for anything else or a day
    /// that does not exist (2027-02-29).
    public init?(_ text: String) {
        let b = Array(text.utf8)
        guard b.count == 10, b[4] == Ascii.minus, b[7] == Ascii.minus,
              let y = Decimal.parse(b[0..<4]), let m = Decimal.parse(b[5..<7]), let d = Decimal.parse(b[8..<10]),
              y >= 1970, (1...12).contains(m), d >= 1, d <= VacationDay.daysIn(month: m, year: y) else { return nil }
        daysSinceEpoch = VacationDay.days(year: y, month: m, day: d)
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month m: Int, year y: Int) -> Int {
        m == 2 ? (isLeap(y) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    }

    /// Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1970).
    static func days(year y: Int, month m: Int, day d: Int) -> Int {
        var n = 0
        for year in 1970..<y { n += isLeap(year) ? 366 : 365 }
        for month in 1..<m { n += daysIn(month: month, year: y) }
        return n + d - 1
    }

    /// The first second of the day.
    public var start: Int { daysSinceEpoch * 86400 }

    public var description: String {
        var tt = time_t(start)
        var tm = Glibc.tm()
        gmtime_r(&tt, &tm)
        func pad(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(Int(tm.tm_year) + 1900)-\(pad(tm.tm_mon + 1))-\(pad(tm.tm_mday))"
    }

    public static func < (a: VacationDay, b: VacationDay) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }
}

/// What a mailbox answers while its owner is away, and when.
public struct VacationSettings: Equatable, Sendable {
    /// Off means off: nothing is answered, whatever the dates say.
    public var enabled: Bool
    /// The reply's subject; empty: "Auto: " and the original subject.
    public var subject: String
    /// The reply's text (UTF-8).
    public var body: String
    /// Answer from the start of this UTC day; nil: from now on.
    public var firstDay: VacationDay?
    /// Answer until the end of this UTC day; nil: until turned off.
    public var lastDay: VacationDay?
    /// One reply per sender within this many days (RFC 3834 suggests 7).
    public var intervalDays: Int
    /// More addresses of this mailbox (aliases, other domains), besides
    /// the one mail is delivered to: mail from them is never answered, and
    /// mail to them counts as addressed to the mailbox.
    public var addresses: [String]
    /// Answer only mail that names one of the mailbox's addresses in To,
    /// Cc, Bcc or their Resent- forms (RFC 3834 section 2 says SHOULD;
    /// BSD vacation and Sieve's vacation do it too): mail that reached the
    /// mailbox through a list or a Bcc from a stranger is left alone.
    public var onlyWhenAddressed: Bool

    public static let defaultIntervalDays = 7
    public static let maxIntervalDays = 365
    public static let maxBodyBytes = 32 * 1024
    public static let maxAddresses = 50

    public init(enabled: Bool = false, subject: String = "", body: String = "", firstDay: VacationDay? = nil,
                lastDay: VacationDay? = nil, intervalDays: Int = VacationSettings.defaultIntervalDays,
                addresses: [String] = [], onlyWhenAddressed: Bool = true) {
        self.enabled = enabled
        self.subject = subject
        self.body = body
        self.firstDay = firstDay
        self.lastDay = lastDay
        self.intervalDays = intervalDays
        self.addresses = addresses
        self.onlyWhenAddressed = onlyWhenAddressed
    }

    /// True when a message arriving at time `t` gets an answer.
    public func isActive(at t: Int) -> Bool {
        guard enabled else { return false }
        if let f = firstDay, t < f.start { return false }
        if let l = lastDay, t >= l.start + 86400 { return false }
        return true
    }

    /// Refuses settings that cannot be stored or sent: a permanent
    /// MailFailure saying what is wrong (the caller's mistake).
    public func validate() throws {
        func refuse(_ s: String) -> MailFailure { .permanent(s, "5.3.0") }
        if subject.utf8.contains(where: { $0 == Ascii.lf || $0 == Ascii.cr || $0 == Ascii.nul }) {
            throw refuse("the vacation subject must be one line")
        }
        if subject.utf8.count > 200 { throw refuse("the vacation subject is longer than 200 bytes") }
        if body.utf8.count > VacationSettings.maxBodyBytes {
            throw refuse("the vacation message is longer than \(VacationSettings.maxBodyBytes) bytes")
        }
        if body.utf8.contains(Ascii.nul) { throw refuse("the vacation message contains a NUL byte") }
        if enabled && body.trimmingCharacters(in: " \t\r\n").isEmpty { throw refuse("the vacation message is empty") }
        if !(1...VacationSettings.maxIntervalDays).contains(intervalDays) {
            throw refuse("the reply interval must be 1 to \(VacationSettings.maxIntervalDays) days")
        }
        if let f = firstDay, let l = lastDay, l < f { throw refuse("the last day \(l) is before the first day \(f)") }
        if addresses.count > VacationSettings.maxAddresses { throw refuse("more than \(VacationSettings.maxAddresses) addresses") }
        for a in addresses {
            let b = Array(a.utf8)
            let at = b.lastIndex(of: Ascii.at)
            if at == nil || at == 0 || at == b.count - 1 || b.contains(where: { $0 <= Ascii.space || $0 == 127 }) {
                throw refuse("not an address: \(a)")
            }
        }
    }

    // MARK: the file

    /// The file's form: "name: value" lines, a blank line, then the text.
    public var fileBytes: [UInt8] {
        var h = "enabled: \(enabled ? "yes" : "no")\n"
        if let f = firstDay { h += "first-day: \(f)\n" }
        if let l = lastDay { h += "last-day: \(l)\n" }
        h += "interval-days: \(intervalDays)\n"
        h += "only-when-addressed: \(onlyWhenAddressed ? "yes" : "no")\n"
        for a in addresses { h += "address: \(a)\n" }
        h += "subject: \(subject)\n\n"
        var out = Array(h.utf8) + Array(body.utf8)
        if !body.isEmpty && out.last != Ascii.lf { out.append(Ascii.lf) }
        return out
    }

    /// Reads the file's form back. Names it does not know are skipped (a
    /// later version's file stays readable); a malformed value throws.
    public init(fileBytes b: [UInt8]) throws {
        self.init()
        var rest = b[...]
        while let nl = rest.firstIndex(of: Ascii.lf) {
            let line = rest[rest.startIndex..<nl]
            rest = rest[(nl + 1)...]
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: Ascii.colon) else {
                throw MailFailure.temporary("malformed vacation settings line: \(Array(line).string)")
            }
            let name = Array(line[line.startIndex..<colon]).string
            let value = Array(line[(colon + 1)...]).string.trimmingCharacters(in: " \t\r")
            func day() throws -> VacationDay {
                guard let d = VacationDay(value) else { throw MailFailure.temporary("bad \(name) in vacation settings: \(value)") }
                return d
            }
            switch name {
            case "enabled": enabled = value == "yes"
            case "first-day": firstDay = try day()
            case "last-day": lastDay = try day()
            case "interval-days":
                guard let n = Decimal.parse(Array(value.utf8)), n >= 1 else { throw MailFailure.temporary("bad interval-days in vacation settings: \(value)") }
                intervalDays = min(n, VacationSettings.maxIntervalDays)
            case "only-when-addressed": onlyWhenAddressed = value != "no"
            case "address": addresses.append(value)
            case "subject": subject = value
            default: break
            }
        }
        body = Array(rest).string
    }
}

/// Where one mailbox's vacation lives: its directory and owner, and
/// whether a .qmail line is needed to reach the responder.
public struct VacationMailbox: Sendable {
    public enum Kind: Sendable {
        /// A hosted mailbox: vdelivermail answers; no .qmail line.
        case hosted
        /// A system account: ~/.qmail runs qmail-vacation (installed in
        /// this qmail home) while the vacation is on.
        case system(QmailHome)
    }

    public let directory: String
    public let uid: uid_t
    public let gid: gid_t
    public let kind: Kind

    public static let fileName = ".vacation"
    /// The senders answered lately (VacationResponder's record table).
    public static let repliedFile = ".vacation.replied"
    public static let program = "qmail-vacation"
    /// The first line of a ~/.qmail that turning vacation on had to make.
    static let madeMark = "# made by qmail-vacation with the default delivery; removed with the vacation"

    public init(directory: String, uid: uid_t, gid: gid_t, kind: Kind) {
        self.directory = directory
        self.uid = uid
        self.gid = gid
        self.kind = kind
    }

    /// A mailbox found by a user directory: a system account (the passwd
    /// backend: initGroups) is reached through its ~/.qmail; any other is
    /// a hosted mailbox.
    public init(_ m: Mailbox, home: QmailHome) {
        self.init(directory: m.home, uid: m.uid, gid: m.gid, kind: m.initGroups ? .system(home) : .hosted)
    }

    public var path: String { directory + "/" + VacationMailbox.fileName }

    /// The settings; disabled defaults when none were ever saved. An
    /// unreadable or malformed file throws (a temporary MailFailure or a
    /// SysError): never mistaken for "off".
    public func load() throws -> VacationSettings {
        try VacationMailbox.loadIfPresent(directory: directory) ?? VacationSettings()
    }

    /// The settings kept in `directory`, or nil when there are none.
    static func loadIfPresent(directory: String) throws -> VacationSettings? {
        guard let b = try FileIO.read(directory + "/" + fileName, limit: 256 * 1024) else { return nil }
        return try VacationSettings(fileBytes: b)
    }

    /// Validates and stores the settings (atomically, owned by the
    /// mailbox), then for a system account adds or removes the .qmail line.
    /// Settings that are off remove the line first and are stored after,
    /// so a crash between the two never leaves a line without an "off".
    /// Turning it on afresh forgets the senders answered last time (each
    /// gets the new text once).
    public func save(_ s: VacationSettings) throws {
        try s.validate()
        if !s.enabled { try setDotQmailLine(false) }
        if s.enabled, !((try? load().enabled) ?? false) { _ = unlink(directory + "/" + VacationMailbox.repliedFile) }
        try FileStore.writeAtomic(path, s.fileBytes, mode: 0o600, owner: (uid, gid))
        if s.enabled { try setDotQmailLine(true) }
    }

    /// Turns the vacation off, keeping its text for next time.
    public func disable() throws {
        var s = try load()
        s.enabled = false
        try save(s)
    }

    // MARK: a system account's ~/.qmail

    var dotQmail: String { directory + "/.qmail" }

    /// Adds (once) or removes (every copy of) the qmail-vacation line of a
    /// system account's ~/.qmail; other lines stay as they are. A hosted
    /// mailbox has no line.
    func setDotQmailLine(_ on: Bool) throws {
        guard case .system(let home) = kind else { return }
        let old = try FileIO.read(dotQmail, limit: 1 << 20)
        let made = VacationMailbox.madeFile(defaultDelivery: (try? FileIO.read(home.control("defaultdelivery"))) ?? nil)
        let new = on ? VacationMailbox.adding(to: old, line: Array("|\(home.bin(VacationMailbox.program))".utf8), made: made)
                     : VacationMailbox.removing(from: old, made: made)
        if new == old { return }
        guard let new else { try Sys.unlink(dotQmail); try Sys.fsyncDirectory(directory); return }
        try FileStore.writeAtomic(dotQmail, new, mode: 0o600, owner: (uid, gid))
    }

    /// True for a .qmail line that runs qmail-vacation (under any path).
    public static func isVacationLine(_ line: [UInt8]) -> Bool {
        guard case .program(let command) = DotQmail.instruction(line) else { return false }
        let word = command.drop { $0 == Ascii.space || $0 == Ascii.tab }.prefix { $0 != Ascii.space && $0 != Ascii.tab }
        let base = word.split(separator: Ascii.slash, omittingEmptySubsequences: false).last.map(Array.init) ?? []
        return base == Array(program.utf8)
    }

    /// The ~/.qmail that keeps the default delivery (control/defaultdelivery,
    /// else ./Maildir/), headed by a mark, before the vacation line.
    static func madeFile(defaultDelivery: [UInt8]?) -> [UInt8] {
        var d = defaultDelivery ?? Array("./Maildir/\n".utf8)
        if d.isEmpty || d.allSatisfy({ $0 == Ascii.lf || $0 == Ascii.space }) { d = Array("./Maildir/\n".utf8) }
        if d.last != Ascii.lf { d.append(Ascii.lf) }
        return Array((madeMark + "\n").utf8) + d
    }

    /// ~/.qmail with the vacation line at the end (after the deliveries:
    /// qmail-local stops at a failed delivery, so only delivered mail is
    /// answered). No .qmail (or an empty one) means qmail-local's default
    /// delivery, which the new file must keep: it starts as `made`.
    static func adding(to old: [UInt8]?, line: [UInt8], made: [UInt8]) -> [UInt8] {
        if let old, lines(old).contains(where: isVacationLine) { return old }
        var out = made
        if let old, !lines(old).isEmpty { out = old }
        if !out.isEmpty && out.last != Ascii.lf { out.append(Ascii.lf) }
        return out + line + [Ascii.lf]
    }

    /// ~/.qmail without its vacation lines, byte for byte otherwise; nil
    /// when what is left is the file `adding` made (unchanged since), so
    /// the account is back to having no .qmail.
    static func removing(from old: [UInt8]?, made: [UInt8]) -> [UInt8]? {
        guard let old else { return nil }
        var kept: [[UInt8]] = []
        var removed = false
        for l in old.split(separator: Ascii.lf, omittingEmptySubsequences: false).map(Array.init) {
            if isVacationLine(l) { removed = true } else { kept.append(l) }
        }
        if !removed { return old }
        let out = Array(kept.joined(separator: [Ascii.lf]))
        return out == made ? nil : out
    }

    static func lines(_ b: [UInt8]) -> [[UInt8]] {
        b.split(separator: Ascii.lf, omittingEmptySubsequences: true).map(Array.init)
    }
}
