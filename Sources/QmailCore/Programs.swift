// Every program qmail-setup installs into HOME/bin, with qmail's mode.
// Programs not built yet are skipped. qmail-queue's owner is set apart
// (qmailq, setuid); all others belong to root in a multi-user home, where
// qmail-srs is setuid root to read control/srssecrets (SRSHelper.swift).
// Names of one multi-call file (MultiCall.swift) are one installed file,
// whose mode is the union of theirs.
#if canImport(Glibc)
import Glibc
#endif

public struct ProgramEntry: Sendable {
    public let name: String
    public let mode: UInt32
}

public enum Programs {
    static func e(_ n: String, _ m: UInt32) -> ProgramEntry { ProgramEntry(name: n, mode: m) }

    public static let all: [ProgramEntry] = [
        // the queue and delivery core
        e("qmail-queue", 0o4711), e("qmail-srs", 0o4711),
        e("qmail-start", 0o700), e("qmail-lspawn", 0o700), e("qmail-newu", 0o700), e("qmail-newmrh", 0o700),
        e("qmail-send", 0o711), e("qmail-rspawn", 0o711), e("qmail-clean", 0o711), e("qmail-local", 0o711),
        e("qmail-getpw", 0o711), e("qmail-remote", 0o711), e("qmail-pw2u", 0o711), e("splogger", 0o711),
        e("qmail-pop3d", 0o711), e("qmail-popup", 0o711), e("qmail-pop3proxy", 0o711),
        // injection and inspection
        e("qmail-inject", 0o755), e("sendmail", 0o755), e("predate", 0o755), e("datemail", 0o755),
        e("mailsubj", 0o755), e("qmail-showctl", 0o755), e("qmail-qread", 0o755), e("qmail-qstat", 0o755),
        e("qmail-tcpto", 0o755), e("qmail-tcpok", 0o755), e("qmail-setup", 0o755), e("qmailctl", 0o755),
        e("qmail-rcptcheck", 0o755), e("qmail-rcptcheck-ldap", 0o755), e("qmail-rcptcheck-mysql", 0o755),
        e("qmail-report", 0o755), e("qmail-spfquery", 0o755),
        // network services
        e("qmail-smtpd", 0o755), e("qmail-smtpd-auth", 0o755), e("qmail-filter", 0o755), e("qmail-filter-ldap", 0o755), e("qmail-filter-mysql", 0o755), e("qmail-quarantine", 0o700), e("qmail-qmqpc", 0o755), e("qmail-qmqpd", 0o755), e("qmail-qmtpd", 0o755),
        e("tcp-env", 0o755), e("tcpserver", 0o755), e("tcprules", 0o755), e("rblsmtpd", 0o755),
        e("tcprulescheck", 0o755), e("tlswrap", 0o755),
        // .qmail helpers
        e("forward", 0o755), e("preline", 0o755), e("condredirect", 0o755), e("bouncesaying", 0o755),
        e("except", 0o755), e("maildirmake", 0o755), e("maildir2mbox", 0o755), e("maildirwatch", 0o755),
        e("maildirsmtp", 0o755), e("maildirserial", 0o755), e("qmail-vacation", 0o755),
        e("qreceipt", 0o755), e("qbiff", 0o755),
        // sendmail migration
        e("fastforward", 0o755), e("newaliases", 0o755), e("setforward", 0o755), e("printforward", 0o755),
        e("newinclude", 0o755), e("setmaillist", 0o755), e("printmaillist", 0o755), e("dot-forward", 0o755),
        e("srsreverse", 0o755),
        // virtual hosting and checkpassword
        e("checkpassword", 0o711), e("checkpassword-file", 0o711), e("checkpassword-ldap", 0o711),
        e("checkpassword-mysql", 0o711), e("vdelivermail", 0o711),
        e("vdelivermail-ldap", 0o711), e("vdelivermail-mysql", 0o711), e("vexport", 0o700),
        e("vadddomain", 0o700), e("vdeldomain", 0o700), e("vadduser", 0o700), e("vdeluser", 0o700),
        e("vpasswd", 0o700), e("vsetuserquota", 0o700), e("valias", 0o700), e("vuserinfo", 0o700),
        e("vdominfo", 0o700), e("vconvert", 0o700), e("vaddaliasdomain", 0o700), e("vmoduser", 0o700), e("vmoveuser", 0o700), e("vmkpasswd", 0o700),
        e("vdkim", 0o700), e("vfilterpolicy", 0o700), e("vvacation", 0o700), e("vmoddomlimits", 0o700), e("vmoddomain", 0o700),
        e("vfilterpolicy-ldap", 0o700), e("vfilterpolicy-mysql", 0o700),
        e("vmoveuser-ldap", 0o700), e("vmoveuser-mysql", 0o700),
        // the web administration (as root, like the v* commands it runs)
        e("qmail-webadmin", 0o700),
    ]
}

extension Programs {
    /// Which file a path is: names of one multi-call file are one FileID.
    public struct FileID: Hashable {
        public let dev: UInt64
        public let ino: UInt64
        public init(_ st: stat) { dev = UInt64(st.st_dev); ino = UInt64(st.st_ino) }
    }

    /// The mode each program found in `dir` gets: its own, or, for names
    /// that are one multi-call file, the union of theirs (qmail-setup gives
    /// the file that mode; qmailctl doctor expects it).
    public static func modes(in dir: String) -> [String: UInt32] {
        var ids: [String: FileID] = [:]
        var union: [FileID: UInt32] = [:]
        for p in all {
            guard let st = try? Sys.stat("\(dir)/\(p.name)") else { continue }
            ids[p.name] = FileID(st)
            union[FileID(st), default: 0] |= p.mode
        }
        return ids.mapValues { union[$0]! }
    }
}
