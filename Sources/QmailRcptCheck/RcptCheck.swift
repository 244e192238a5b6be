// The recipient lookup qmail-smtpd asks at RCPT time (RCPTCHECK or
// control/rcptcheck): is user@domain a known recipient of a hosted domain?
// Answers as an exit code: 0 known (or not ours to judge), 100 unknown,
// 111 the directory cannot say now. "Unknown" is said only when delivery
// would certainly bounce: the domain is hosted, there is no mailbox, alias,
// user-ext base mailbox or .qmail file for the name, and the domain's
// .qmail-default bounces unknown users (vdelivermail bounce-no-mailbox).
// The recipients come from the directory control/userdirectory names, as
// vdelivermail's do: qmail-rcptcheck reads the file backend and, for LDAP
// or MySQL, execs qmail-rcptcheck-ldap/-mysql in its place (so it links
// neither client library). Asking the file backend there would call every
// mailbox of the directory unknown.
import QmailCore
import UserDirectory

public enum RcptCheck {
    public static let known: Int32 = 0
    public static let unknown: Int32 = QmailExit.permanent
    public static let temporary: Int32 = QmailExit.temporary

    /// The whole program: argv is [name, address]. `directory` is given by
    /// qmail-rcptcheck-ldap/-mysql; qmail-rcptcheck passes nil and follows
    /// control/userdirectory.
    public static func main(argv: [String], directory: ((QmailHome) -> RecipientDirectory)? = nil) -> Int32 {
        guard argv.count == 2 else {
            Sys.warn("qmail-rcptcheck: usage: qmail-rcptcheck address")
            return temporary
        }
        let home = QmailHome.current()
        if let make = directory { return check(address: Array(argv[1].utf8), backend: make(home)) }
        do {
            if let variant = try DirectoryChoice.variant(of: "qmail-rcptcheck", home: home) {
                let e = ChildProcess.exec(.init([variant, argv[1]], program: variant))
                Sys.warn("qmail-rcptcheck: unable to run \(variant): \(e)")
                return temporary
            }
        } catch {
            Sys.warn("qmail-rcptcheck: \(error)")
            return temporary
        }
        return check(address: Array(argv[1].utf8), backend: FileBackend(home: home))
    }

    public static func check(address: [UInt8], backend: RecipientDirectory) -> Int32 {
        guard let at = address.lastIndex(of: Ascii.at), at > 0 else { return known }
        let user = Array(address[..<at]).lowercasedASCII()
        let domain = Array(address[(at + 1)...]).lowercasedASCII()
        switch backend.recipient(user: user, domain: domain, aliases: true) {
        case .temporary:
            return temporary
        case .noSuchDomain, .alias:
            return known
        case .mailbox(let m, _):
            return m.bounceMail ? unknown : known
        case .noSuchUser(let dom):
            if let dash = user.firstIndex(of: Ascii.minus), dash > 0 {
                switch backend.recipient(user: Array(user[..<dash]), domain: domain, aliases: true) {
                case .mailbox: return known
                case .temporary: return temporary
                default: break
                }
            }
            return dotQmailDecides(user: user, dir: dom.dir)
        }
    }

    /// qmail-local's view of the domain directory: a .qmail file for the
    /// name (dots written as ':') or for one of its "-default" prefixes
    /// catches the mail; otherwise .qmail-default decides.
    static func dotQmailDecides(user: [UInt8], dir: String) -> Int32 {
        let name = user.map { $0 == Ascii.dot ? Ascii.colon : $0 }.string
        if Sys.exists("\(dir)/.qmail-\(name)") { return known }
        var i = name.endIndex
        while let dash = name[..<i].lastIndex(of: "-") {
            if Sys.exists("\(dir)/.qmail-\(name[..<dash])-default") { return known }
            i = dash
        }
        let data: [UInt8]?
        do { data = try FileIO.read(dir + "/.qmail-default", limit: 1 << 20) } catch { return temporary }
        guard let data, let line = Control.parseList(data).first else { return known }
        let words = line.split(separator: Ascii.space).map { Array($0) }
        guard line.first == 124, words.contains(where: { $0.string.hasSuffix("vdelivermail") }), let last = words.last else {
            return known
        }
        let action = last.filter { $0 != 39 && $0 != 34 }
        return action.isEmpty || action == Array("bounce-no-mailbox".utf8) ? unknown : known
    }
}
