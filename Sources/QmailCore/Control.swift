// qmail's control files, read with qmail's rules:
// - a one-line control uses its first line, trailing spaces and tabs removed;
// - a list control skips blank lines and lines starting with '#';
// - a number that does not parse leaves the default in place;
// - many controls default to the contents of `me`.
// A missing file means "use the default"; an unreadable one is an error the
// caller must treat as temporary.

public struct ControlDefault: Sendable {
    public enum Kind: Sendable { case line, number, list, cdb }
    public let name: String
    public let kind: Kind
    /// The fallback, or "me" when the value of `me` is used.
    public let fallback: String?
    public let usedBy: String
}

public enum ControlFiles {
    /// Every control file of qmail-control(5), with its default.
    public static let all: [ControlDefault] = [
        .init(name: "badmailfrom", kind: .list, fallback: nil, usedBy: "qmail-smtpd"),
        .init(name: "bouncefrom", kind: .line, fallback: "MAILER-DAEMON", usedBy: "qmail-send"),
        .init(name: "bouncehost", kind: .line, fallback: "me", usedBy: "qmail-send"),
        .init(name: "concurrencylocal", kind: .number, fallback: "10", usedBy: "qmail-send"),
        .init(name: "concurrencyremote", kind: .number, fallback: "20", usedBy: "qmail-send"),
        .init(name: "databytes", kind: .number, fallback: "0", usedBy: "qmail-smtpd"),
        .init(name: "defaultdomain", kind: .line, fallback: "me", usedBy: "qmail-inject"),
        .init(name: "defaulthost", kind: .line, fallback: "me", usedBy: "qmail-inject"),
        .init(name: "doublebouncehost", kind: .line, fallback: "me", usedBy: "qmail-send"),
        .init(name: "doublebounceto", kind: .line, fallback: "postmaster", usedBy: "qmail-send"),
        .init(name: "envnoathost", kind: .line, fallback: "me", usedBy: "qmail-send"),
        .init(name: "helohost", kind: .line, fallback: "me", usedBy: "qmail-remote"),
        .init(name: "idhost", kind: .line, fallback: "me", usedBy: "qmail-inject"),
        .init(name: "localiphost", kind: .line, fallback: "me", usedBy: "qmail-smtpd"),
        .init(name: "locals", kind: .list, fallback: "me", usedBy: "qmail-send"),
        .init(name: "me", kind: .line, fallback: nil, usedBy: "various"),
        .init(name: "morercpthosts", kind: .list, fallback: nil, usedBy: "qmail-smtpd (as morercpthosts.cdb)"),
        .init(name: "morercpthosts.cdb", kind: .cdb, fallback: nil, usedBy: "qmail-smtpd"),
        .init(name: "percenthack", kind: .list, fallback: nil, usedBy: "qmail-send"),
        .init(name: "plusdomain", kind: .line, fallback: "me", usedBy: "qmail-inject"),
        .init(name: "qmqpservers", kind: .list, fallback: nil, usedBy: "qmail-qmqpc"),
        .init(name: "queuelifetime", kind: .number, fallback: "604800", usedBy: "qmail-send"),
        .init(name: "rcpthosts", kind: .list, fallback: nil, usedBy: "qmail-smtpd"),
        .init(name: "smtpgreeting", kind: .line, fallback: "me", usedBy: "qmail-smtpd"),
        .init(name: "smtproutes", kind: .list, fallback: nil, usedBy: "qmail-remote"),
        .init(name: "timeoutconnect", kind: .number, fallback: "60", usedBy: "qmail-remote"),
        .init(name: "timeoutremote", kind: .number, fallback: "1200", usedBy: "qmail-remote"),
        .init(name: "timeoutsmtpd", kind: .number, fallback: "1200", usedBy: "qmail-smtpd"),
        .init(name: "virtualdomains", kind: .list, fallback: nil, usedBy: "qmail-send"),
    ]

    /// swift-qmail's own control files (none of them in qmail 1.03), named so
    /// that qmail-showctl can say who reads each. Only `listed` files have
    /// their lines shown: not secrets, keys, certificates or directories.
    public struct Own: Sendable {
        public let name: String
        public let usedBy: String
        public let listed: Bool
    }

    public static let ours: [Own] = [
        .init(name: "authfailexempt", usedBy: "qmail-popup, qmail-smtpd-auth, qmail-webadmin (login limits)", listed: true),
        .init(name: "authfaillimit", usedBy: "qmail-popup, qmail-smtpd-auth, qmail-webadmin (login limits)", listed: true),
        .init(name: "authpolicy", usedBy: "qmail-smtpd (SPF, DKIM, DMARC; qmail-authpolicy(5))", listed: true),
        .init(name: "authservid", usedBy: "qmail-smtpd (Authentication-Results)", listed: true),
        .init(name: "clamd", usedBy: "qmail-filter", listed: true),
        .init(name: "clusterca.pem", usedBy: "qmail-pop3proxy (TLS to home hosts)", listed: false),
        .init(name: "clusterhost", usedBy: "vdelivermail, checkpassword (this host's cluster name)", listed: true),
        .init(name: "clusterhosts", usedBy: "vdelivermail, qmail-pop3proxy, qmail-popup (XCLIENT from these)", listed: true),
        .init(name: "clusterpop3port", usedBy: "qmail-pop3proxy", listed: true),
        .init(name: "clusterpop3tls", usedBy: "qmail-pop3proxy", listed: true),
        .init(name: "clustersecret", usedBy: "vdelivermail (cluster loop markers), qmail-send (warns without)", listed: false),
        .init(name: "defaultdelivery", usedBy: "qmail-start", listed: true),
        .init(name: "dkim", usedBy: "qmail-remote (DKIM keys; vdkim(8))", listed: false),
        .init(name: "filter", usedBy: "qmail-filter (vfilterpolicy(8))", listed: true),
        .init(name: "filtertimeout", usedBy: "qmail-filter", listed: true),
        .init(name: "greylist", usedBy: "qmail-smtpd (greylisting)", listed: true),
        .init(name: "greylistok", usedBy: "qmail-smtpd (greylisting)", listed: true),
        .init(name: "notlshosts", usedBy: "qmail-remote", listed: true),
        .init(name: "rcptcheck", usedBy: "qmail-smtpd", listed: true),
        .init(name: "servercert.pem", usedBy: "qmail-smtpd, qmail-popup (TLS)", listed: false),
        .init(name: "serverkey.pem", usedBy: "qmail-smtpd, qmail-popup (TLS)", listed: false),
        .init(name: "spamd", usedBy: "qmail-filter", listed: true),
        .init(name: "spfbehavior", usedBy: "qmail-smtpd (SPF)", listed: true),
        .init(name: "srsdomain", usedBy: "qmail-srs, qmail-smtpd (SRS)", listed: true),
        .init(name: "srssecrets", usedBy: "qmail-srs (SRS)", listed: false),
        .init(name: "timeoutspf", usedBy: "qmail-smtpd (SPF, DKIM, DMARC lookups)", listed: true),
        .init(name: "tlsserverciphers", usedBy: "qmail-smtpd, qmail-popup, qmail-webadmin (TLS)", listed: true),
        .init(name: "userdirectory", usedBy: "vdelivermail, qmail-local, the v* commands", listed: true),
        .init(name: "vdefaultdomain", usedBy: "the v* commands", listed: true),
        .init(name: "vhostuser", usedBy: "the v* commands", listed: true),
        .init(name: "voverquota", usedBy: "vdelivermail", listed: true),
        .init(name: "vplaintext", usedBy: "the v* commands, checkpassword-file", listed: true),
        .init(name: "webadminlisten", usedBy: "qmail-webadmin", listed: true),
        .init(name: "webadminport", usedBy: "qmail-webadmin", listed: true),
        .init(name: "webadmins", usedBy: "qmail-webadmin (system administrators)", listed: true),
    ]

    public static func named(_ name: String) -> ControlDefault? {
        all.first { $0.name == name }
    }
}

/// Reads control files from one directory.
public struct Control: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public init(home: QmailHome) {
        self.directory = home.control
    }

    public func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// The raw contents, nil if missing.
    public func raw(_ name: String) throws -> [UInt8]? {
        try FileIO.read(path(name), limit: 16 << 20)
    }

    /// First line, trailing whitespace removed; nil if the file is missing.
    public func line(_ name: String) throws -> [UInt8]? {
        guard let data = try raw(name) else { return nil }
        let first = data.firstIndex(of: Ascii.lf).map { Array(data[0..<$0]) } ?? data
        return first.trimmingTrailing { $0 == Ascii.space || $0 == Ascii.tab || $0 == Ascii.cr }
    }

    /// `me`, or nil when not configured.
    public func me() throws -> [UInt8]? {
        try line("me")
    }

    /// A one-line control with its default: the file, else `me` when the
    /// default is "me", else the literal default, else nil.
    public func lineWithDefault(_ name: String) throws -> [UInt8]? {
        if let v = try line(name) { return v }
        guard let def = ControlFiles.named(name)?.fallback else { return nil }
        if def == "me" { return try me() }
        return Array(def.utf8)
    }

    public func string(_ name: String) throws -> String? {
        try lineWithDefault(name)?.string
    }

    /// A numeric control: the file's leading digits, else the default.
    public func number(_ name: String, default def: Int? = nil) throws -> Int {
        let fallback = def ?? ControlFiles.named(name)?.fallback.flatMap { Decimal.parse(Array($0.utf8)) } ?? 0
        guard let v = try line(name) else { return fallback }
        return Decimal.scanPrefix(v) ?? fallback
    }

    /// A list control: non-blank, non-comment lines, trailing whitespace
    /// removed. A missing file gives `me` when the default is "me", else [].
    public func list(_ name: String) throws -> [[UInt8]] {
        guard let data = try raw(name) else {
            if ControlFiles.named(name)?.fallback == "me", let me = try me() { return [me] }
            return []
        }
        return Control.parseList(data)
    }

    public static func parseList(_ data: [UInt8]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for raw in data.split(separator: Ascii.lf, omittingEmptySubsequences: true) {
            var end = raw.endIndex
            while end > raw.startIndex {
                let c = raw[end - 1]
                if c == Ascii.space || c == Ascii.tab || c == Ascii.cr { end -= 1 } else { break }
            }
            let line = raw[raw.startIndex..<end]
            if line.isEmpty || line.first == Ascii.hash { continue }
            out.append(Array(line))
        }
        return out
    }
}
