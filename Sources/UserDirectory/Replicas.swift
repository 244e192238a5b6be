// A directory read from replicas (issue 22): each host reads the servers
// its control files list first (a local slapd consumer, a MariaDB
// replica), and the provider/primary takes the writes. A replica may lag
// behind: a mailbox made a moment ago on the provider is not there yet, a
// new password not yet either. So a replica's "yes" is used as it is, but
// its "no" (no such mailbox, no such domain, a wrong password, a disabled
// account) is only a verdict once the provider says the same; a provider
// that cannot be asked makes it a temporary failure (a deferral, a
// -ERR [SYS/TEMP]), never a bounce or a failed login. Where no provider is
// named apart from the read servers, their answer is the verdict (every
// single-server site, as before).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// A backend whose read servers may be replicas of a provider.
public protocol ReplicatedDirectory: UserBackend, RecipientDirectory {
    /// A reader of the provider alone; nil when none is named apart from
    /// the read servers (their answers are then authoritative).
    func provider() throws -> (UserBackend & RecipientDirectory)?
}

public enum Replicas {
    /// `answer` from the read servers, a negative one confirmed by `ask`ing
    /// the provider (whose answer, positive or negative, then stands).
    public static func confirm(_ answer: FileBackend.Recipient, _ directory: ReplicatedDirectory,
                               ask: (RecipientDirectory) -> FileBackend.Recipient) -> FileBackend.Recipient {
        switch answer {
        case .noSuchUser, .noSuchDomain: break
        case .mailbox, .alias, .temporary: return answer
        }
        let provider: RecipientDirectory
        do {
            guard let p = try directory.provider() else { return answer }
            provider = p
        } catch let f as MailFailure { return .temporary(f.text) } catch { return .temporary("\(error)") }
        let confirmed = ask(provider)
        if case .temporary(let why) = confirmed {
            return .temporary("the replica knows no such recipient and the provider cannot confirm it: \(why)")
        }
        return confirmed
    }

    /// A login the read servers refused (wrong password, disabled), checked
    /// again against the provider, whose verdict stands. Unknown users
    /// need no second look: the lookup already asked the provider.
    static func confirm(_ result: AuthResult, _ backend: UserBackend,
                        check: (UserBackend) -> AuthResult) -> AuthResult {
        switch result {
        case .mismatch, .disabled: break
        case .ok, .unknownUser, .temporary: return result
        }
        guard let directory = backend as? ReplicatedDirectory else { return result }
        let provider: UserBackend
        do {
            guard let p = try directory.provider() else { return result }
            provider = p
        } catch let f as MailFailure { return .temporary(f.text) } catch { return .temporary("\(error)") }
        let again = check(provider)
        if case .temporary(let why) = again {
            return .temporary("the replica refused the login and the provider cannot confirm it: \(why)")
        }
        return again
    }
}
