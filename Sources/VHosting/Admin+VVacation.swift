// vvacation: shows, sets or clears a mailbox's vacation reply. The web
// application calls the public functions here, so the command line and the
// web read and write the same file the same way (VacationMailbox).
//   vvacation user@domain --show
//   vvacation user@domain --on --subject S --message-file F --from DAY --until DAY --interval DAYS
//   vvacation user@domain --off
// An operand without "@" names a system account, whose ~/.qmail gets (or
// loses) the qmail-vacation line.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory
import VDelivery

extension Admin {
    static let vacationUsage = "vvacation user@domain|account [--show] [--on | --off] [--subject TEXT] [--message-file FILE|-] "
        + "[--from YYYY-MM-DD | --from now] [--until YYYY-MM-DD | --until never] [--interval DAYS] "
        + "[--address ADDR]... [--no-addresses] [--any-recipient | --addressed-only]"

    /// Where the vacation of `address` lives: a hosted mailbox
    /// (user@domain, an alias domain resolving to its real one) or, with
    /// no "@", a system account of this machine.
    public func vacationMailbox(_ address: String) throws -> VacationMailbox {
        if !address.contains("@") {
            guard let pw = Admin.accountHome(address) else { throw AdminError.refused("no such account: \(address)") }
            if pw.uid == 0 { throw AdminError.refused("root gets no vacation replies (its mail goes to an alias)") }
            return VacationMailbox(directory: pw.home, uid: pw.uid, gid: pw.gid, kind: .system(home))
        }
        let (user, domainName) = try Names.address(Array(address.utf8))
        let d = try hostedDomain(domainName)
        guard let u = try store.loadUsers(d).first(where: { $0.name == user }) else {
            throw AdminError.refused("no such user \(user.string)@\(d.name.string)")
        }
        return VacationMailbox(directory: u.dir, uid: d.uid, gid: d.gid, kind: .hosted)
    }

    /// The vacation settings of `address` (disabled defaults if never set).
    public func vacation(_ address: String) throws -> VacationSettings {
        do { return try vacationMailbox(address).load() } catch { throw AdminError.from(error) }
    }

    /// Stores the settings of `address` (validated first: an invalid one
    /// is refused and nothing is written).
    public func setVacation(_ address: String, _ settings: VacationSettings) throws {
        do {
            let box = try vacationMailbox(address)
            try store.withLock { try box.save(settings) }
        } catch { throw AdminError.from(error) }
    }

    /// Turns the vacation of `address` off; its text is kept for next time.
    public func disableVacation(_ address: String) throws {
        do {
            let box = try vacationMailbox(address)
            try store.withLock { try box.disable() }
        } catch { throw AdminError.from(error) }
    }

    // MARK: the command

    func vacationCommand(_ args: [String]) throws -> [String] {
        let usage = Admin.vacationUsage
        var operands: [String] = []
        var show = false
        var edits: [(inout VacationSettings) throws -> Void] = []
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw AdminError.usage(usage) }
            return args[i]
        }
        func day(_ text: String, _ what: String) throws -> VacationDay? {
            if text == "now" || text == "never" || text.isEmpty { return nil }
            guard let d = VacationDay(text) else { throw AdminError.refused("bad \(what) day \(text) (want YYYY-MM-DD)") }
            return d
        }
        while i < args.count {
            let a = args[i]
            switch a {
            case "--show": show = true
            case "--on": edits.append { $0.enabled = true }
            case "--off": edits.append { $0.enabled = false }
            case "--subject": let v = try value(); edits.append { $0.subject = v }
            case "--message-file":
                let body = try Admin.readMessage(try value())
                edits.append { $0.body = body }
            case "--from": let d = try day(try value(), "first"); edits.append { $0.firstDay = d }
            case "--until": let d = try day(try value(), "last"); edits.append { $0.lastDay = d }
            case "--interval":
                let v = try value()
                guard let n = Decimal.parse(Array(v.utf8)) else { throw AdminError.refused("bad interval \(v) (want days)") }
                edits.append { $0.intervalDays = n }
            case "--address": let v = try value(); edits.append { $0.addresses.append(v) }
            case "--no-addresses": edits.append { $0.addresses = [] }
            case "--any-recipient": edits.append { $0.onlyWhenAddressed = false }
            case "--addressed-only": edits.append { $0.onlyWhenAddressed = true }
            case "--": operands += args[(i + 1)...]; i = args.count; continue
            default:
                if a.hasPrefix("-") { throw AdminError.usage(usage) }
                operands.append(a)
            }
            i += 1
        }
        guard operands.count == 1 else { throw AdminError.usage(usage) }
        let address = operands[0]
        if !edits.isEmpty {
            var s = try vacation(address)
            for e in edits { try e(&s) }
            try setVacation(address, s)
        }
        if show || edits.isEmpty { print(Admin.describe(try vacation(address)), terminator: "") }
        return []
    }

    /// FILE's text, or stdin's for "-" (at most the largest message).
    static func readMessage(_ file: String) throws -> String {
        let limit = VacationSettings.maxBodyBytes
        let data: [UInt8]?
        do {
            if file == "-" { data = try ByteReader(fd: 0, capacity: 65536).readAll(limit: limit) } else {
                guard let all = try FileIO.read(file, limit: limit) else { throw AdminError.refused("no such file: \(file)") }
                data = all
            }
        } catch let e as AdminError { throw e } catch {
            throw AdminError.refused("unable to read \(file): \(error)")
        }
        guard let data else { throw AdminError.refused("\(file) is longer than \(limit) bytes") }
        return data.string
    }

    /// The settings as vvacation --show prints them: the file's own form.
    static func describe(_ s: VacationSettings) -> String { s.fileBytes.string }
}
