// qmailctl's configuration: HOME/qmailctl.conf (or the file QMAILCTL_CONF
// names), lines `key=value`, `#` comments. Keys:
//   svdir=/service            daemontools service directory (scanned by svscan)
//   smtprules=/etc/tcp.smtp   tcprules source for qmail-smtpd (repeatable)
//   pop3rules=/etc/tcp.pop3   tcprules source for the POP3 services (repeatable)
//   rules=FILE                any other tcprules source to rebuild (repeatable)
//   aliases=/etc/aliases      newaliases source
//   log=FILE                  where `qmailctl start` sends qmail-send's log
//                             when not under daemontools (default: splogger)
//   sendlog=FILE|DIR          qmail-send's log for doctor's deferral reasons
//                             (a multilog directory: its current; default: log=)
import QmailCore

public struct CtlConfig {
    public var home: QmailHome
    public var svdir: String = "/service"
    public var smtpRules: [String] = []
    public var pop3Rules: [String] = []
    public var otherRules: [String] = []
    public var aliases = "/etc/aliases"
    public var log: String? = nil
    public var sendLogFile: String? = nil
    /// Where doctor reads qmail-send's log.
    public var sendLog: String? { sendLogFile ?? log }
    /// The service directory was named explicitly (-s or svdir=).
    public var svdirGiven = false

    public init(home: QmailHome) { self.home = home }

    public static func load(home: QmailHome, path: String?) throws -> CtlConfig {
        var c = CtlConfig(home: home)
        let file = path ?? "\(home.path)/qmailctl.conf"
        if let data = try FileIO.read(file, limit: 1 << 20) {
            for raw in data.split(separator: Ascii.lf) {
                let line = String(decoding: raw, as: UTF8.self).trimmingSpaces()
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let eq = line.firstIndex(of: "=") else { continue }
                let k = String(line[..<eq]).trimmingSpaces()
                let v = String(line[line.index(after: eq)...]).trimmingSpaces()
                switch k {
                case "svdir": c.svdir = v; c.svdirGiven = true
                case "smtprules": c.smtpRules.append(v)
                case "pop3rules": c.pop3Rules.append(v)
                case "rules": c.otherRules.append(v)
                case "aliases": c.aliases = v
                case "log": c.log = v
                case "sendlog": c.sendLogFile = v
                default: break
                }
            }
        }
        if c.smtpRules.isEmpty { c.smtpRules = ["/etc/tcp.smtp"] }
        if c.pop3Rules.isEmpty { c.pop3Rules = ["/etc/tcp.pop3"] }
        return c
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
