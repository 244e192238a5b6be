// Logged-in sessions, kept in memory only (a restart logs everyone out):
// a random token in the session cookie, and per session a random CSRF
// token that every state-changing form must carry back.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// Who is logged in and what that login may reach. The scope is decided
/// at login and checked on every request, never taken from a form.
public struct Session: Sendable {
    /// The mailbox logged in as, "user@domain", lower case.
    public let address: String
    /// Its (real) domain.
    public let domain: String
    /// Listed in control/webadmins: every domain.
    public let isSystem: Bool
    /// postmaster@domain: that domain's mailboxes, aliases, catch-all.
    public let isPostmaster: Bool
    /// The mailbox exists in the file store or the directory (its own pages work).
    public let hasMailbox: Bool
    /// Where an LDAP or MySQL directory keeps the mailbox; nil: the file store.
    public let directoryMailbox: DirectoryMailbox?
    public let csrf: String
    var expires: Int
    /// One message for the next page (the outcome of the last change).
    var flash: Flash?

    public func mayManage(domain d: String) -> Bool { isSystem || (isPostmaster && d == domain) }
}

public struct Flash: Sendable {
    public let ok: Bool
    public let text: String
}

/// The helper's one thread is its only user (one request at a time).
public final class SessionStore {
    /// Idle time after which a session ends.
    public static let idleSeconds = 30 * 60
    static let maxSessions = 10_000
    private var sessions: [String: Session] = [:]

    public init() {}

    /// A new session and its token (never an old one: no fixation).
    public func open(address: String, domain: String, isSystem: Bool, isPostmaster: Bool, hasMailbox: Bool,
                     directoryMailbox: DirectoryMailbox? = nil) -> String {
        purge()
        let token = randomToken()
        sessions[token] = Session(address: address, domain: domain, isSystem: isSystem, isPostmaster: isPostmaster,
                                  hasMailbox: hasMailbox, directoryMailbox: directoryMailbox, csrf: randomToken(),
                                  expires: Sys.now() + SessionStore.idleSeconds)
        return token
    }

    /// The session of a token, its idle time restarted; nil when unknown or over.
    public func session(_ token: String?) -> Session? {
        guard let t = token, var s = sessions[t] else { return nil }
        let now = Sys.now()
        if s.expires <= now { sessions[t] = nil; return nil }
        s.expires = now + SessionStore.idleSeconds
        sessions[t] = s
        return s
    }

    public func close(_ token: String?) { if let t = token { sessions[t] = nil } }

    public func setFlash(_ token: String?, _ f: Flash?) {
        if let t = token, sessions[t] != nil { sessions[t]!.flash = f }
    }

    /// The message waiting for the next page, handed out once.
    public func takeFlash(_ token: String?) -> Flash? {
        guard let t = token, let f = sessions[t]?.flash else { return nil }
        sessions[t]!.flash = nil
        return f
    }

    private func purge() {
        let now = Sys.now()
        sessions = sessions.filter { $0.value.expires > now }
        if sessions.count >= SessionStore.maxSessions, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
            sessions[oldest.key] = nil
        }
    }
}

/// 32 random bytes in hex, from the kernel's random source.
public func randomToken() -> String {
    var raw = [UInt8](repeating: 0, count: 32)
    precondition(getentropy(&raw, raw.count) == 0, "getentropy failed")
    return raw.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}
