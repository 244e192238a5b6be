// Everything qmail-smtpd learns before the greeting: control files, the
// environment set by tcpserver/tcprules, and the AUTH command line.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet
import QmailQueue

public struct SMTPConfig {
    public var greeting: [UInt8] = Array("localhost".utf8)
    public var localIPHost: [UInt8] = Array("localhost".utf8)
    public var timeout = 1200
    public var databytes = 0
    public var rcptHosts = RcptHosts(lines: nil, more: nil)
    public var badMailFrom = BadMailFrom(lines: [])
    /// control/percenthack (nil when it lists nothing): a recipient is
    /// judged as qmail-send will rewrite it.
    public var percentHack: PercentHack? = nil
    /// This host's addresses, for localiphost; nil until an address literal needs them.
    public var ipme: Set<IPAddress>? = nil

    public var remoteIP: [UInt8] = Array("unknown".utf8)
    public var remoteHost: [UInt8] = Array("unknown".utf8)
    public var remoteInfo: [UInt8]? = nil
    public var local: [UInt8] = Array("unknown".utf8)
    /// RELAYCLIENT: appended to every recipient; nil means no relaying.
    public var relayClient: [UInt8]? = nil

    /// "qmail-smtpd hostname checkpassword prog...": AUTH is offered when set.
    public var authHostname: [UInt8]? = nil
    public var checkpassword: [String] = []
    /// SMTPAUTHFD: the socket to qmail-smtpd-auth, which checks logins
    /// with privileges this process does not have (instead of checkpassword).
    public var authHelperFd: Int32?
    public var authRequired = false     // SMTPAUTH contains '!' (submission)
    public var authCram = false         // SMTPAUTH contains "cram"
    public var authPlainLogin = true    // false for SMTPAUTH "cram" without '+'
    public var authNeedsTLS = false     // FORCETLS set (not "0")
    /// Seconds to wait before answering a refused AUTH (SMTPAUTHFAILDELAY),
    /// and refused AUTHs after which the session ends: password guessing
    /// gets what qmail-popup gives it, not hundreds of tries per connection.
    public var authFailDelay: UInt32 = 2
    public var maxAuthFailures = 3
    /// A program asked about each recipient in rcpthosts: exit 0 known, 100 unknown, else temporary.
    public var rcptCheck: [String]? = nil
    public var rcptCheckTimeout = 30
    public var maxRecipients = 1000
    public var maxLine = 2048
    public var queueProgram = "/var/qmail/bin/qmail-queue"
    /// Our own qmail-queue (QMAILQUEUE not in effect): one queue process per
    /// connection (QueueSession) instead of one per message.
    public var queueSession = false
    /// STARTTLS is offered when a TLS starter is installed.
    public var tlsAvailable = false
    /// SSL_PROTOCOL set: the connection is TLS already (tlswrap, port 465's
    /// implicit TLS), so no STARTTLS, and FORCETLS is satisfied.
    public var tlsWrapped = false
    /// SPF checking of MAIL FROM (SMTPServer+SPF.swift).
    public var spf = SPFPolicy()
    /// SRS addresses checked at RCPT (SMTPServer+SRS.swift); nil: SRS off.
    public var srs: SRSIntake? = nil

    public init() {}

    /// Reads control files and environment as qmail-smtpd's setup() does.
    /// Throws when a control file exists but cannot be read (421, temporary).
    public static func load(home: QmailHome, arguments: [String]) throws -> SMTPConfig {
        var c = SMTPConfig()
        let control = Control(home: home)
        guard let greeting = try control.lineWithDefault("smtpgreeting") else {
            throw MailFailure.temporary("unable to read controls")
        }
        c.greeting = greeting
        c.localIPHost = try control.lineWithDefault("localiphost") ?? greeting
        c.timeout = try control.number("timeoutsmtpd")
        if c.timeout <= 0 { c.timeout = 1 }
        c.rcptHosts = try RcptHosts(control: control)
        c.badMailFrom = BadMailFrom(lines: try control.list("badmailfrom"))
        c.percentHack = try PercentHack.loadIfListed(control)
        c.databytes = try control.number("databytes")
        if let d = Sys.getenv("DATABYTES"), let v = Decimal.scanPrefix(Array(d.utf8)) { c.databytes = v }

        if let v = Sys.getenv("TCPREMOTEIP") { c.remoteIP = Array(v.utf8) }
        if let v = Sys.getenv("TCPREMOTEHOST") { c.remoteHost = Array(v.utf8) }
        c.remoteInfo = Sys.getenv("TCPREMOTEINFO").map { Array($0.utf8) }
        if let v = Sys.getenv("TCPLOCALHOST") ?? Sys.getenv("TCPLOCALIP") { c.local = Array(v.utf8) }
        c.relayClient = Sys.getenv("RELAYCLIENT").map { Array($0.utf8) }

        if let v = Sys.getenv("SMTPAUTHFD"), let n = Decimal.parse(Array(v.utf8)), n > 2, n < 1024 {
            c.authHelperFd = Int32(n)
        }
        if arguments.count >= 3 || (arguments.count == 2 && c.authHelperFd != nil) {
            c.authHostname = Array(arguments[1].utf8)
            c.checkpassword = Array(arguments[2...])
        }
        let mode = Sys.getenv("SMTPAUTH") ?? ""
        c.authRequired = mode.contains("!")
        c.authCram = mode.contains("cram")
        c.authPlainLogin = !c.authCram || mode.contains("+")
        if let f = Sys.getenv("FORCETLS"), f != "0" { c.authNeedsTLS = true }
        c.tlsWrapped = !(Sys.getenv("SSL_PROTOCOL") ?? "").isEmpty
        if let v = Sys.getenv("SMTPAUTHFAILDELAY"), let n = Decimal.parse(Array(v.utf8)), n <= 60 { c.authFailDelay = UInt32(n) }
        if let v = Sys.getenv("MAXRCPT"), let n = Decimal.parse(Array(v.utf8)), n > 0 { c.maxRecipients = n }
        if let v = Sys.getenv("RCPTCHECKTIMEOUT"), let n = Decimal.parse(Array(v.utf8)), n > 0 { c.rcptCheckTimeout = n }

        if let prog = Sys.getenv("RCPTCHECK"), !prog.isEmpty {
            c.rcptCheck = prog.split(separator: " ").map(String.init)
        } else if let prog = try control.line("rcptcheck"), !prog.isEmpty {
            c.rcptCheck = prog.split(separator: Ascii.space).map { String(decoding: $0, as: UTF8.self) }
        }
        c.queueProgram = QueueClient.program(home: home, honourEnvironment: true)
        c.queueSession = QueueSession.wanted(program: c.queueProgram, home: home)
        c.spf = try SPFPolicy.load(control)
        c.srs = try SRSIntake.load(home: home)
        return c
    }
}
