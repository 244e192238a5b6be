// SRS around the setuid helper qmail-srs. The forwarders (qmail-local,
// forward, fastforward, dot-forward, vdelivermail) run as the mailbox's
// uid and qmail-smtpd as qmaild, but the secret (control/srssecrets,
// root, mode 600) must stay out of the mailbox users' reach. So only
// qmail-srs, setuid root like qmail-queue is setuid qmailq, reads it:
// it reads that one file, drops to its caller's ids for good (Privileges,
// checked), and only then looks at its arguments, signs or verifies one
// address and prints the answer. No daemon to supervise, no socket to
// guard, no OpenSSL (HMAC-SHA1 is in SHA1.swift); a key change needs no
// restart. The kernel keeps a process that was setuid undumpable after
// the drop, so its caller cannot ptrace the secret out of it.
//
// control/srsdomain names the domain of the rewritten senders; without it
// SRS is off and senders pass unchanged, as in qmail.
#if canImport(Glibc)
import Glibc
#endif

public enum SRSHelper {
    public static let program = "qmail-srs"
    public static let secretsFile = "srssecrets"
    public static let domainFile = "srsdomain"

    /// qmail-srs's exit codes: refused (forged, expired, malformed) and
    /// temporary (no secret, unreadable file); 0 with the answer on fd 1.
    static let refused: Int32 = QmailExit.permanent
    static let temporary: Int32 = QmailExit.temporary

    /// The helper program: `qmail-srs forward SENDER` or `qmail-srs reverse ADDRESS`.
    public static func main(_ args: [String]) -> Int32 {
        let home = QmailHome.current()  // never from the environment while setuid
        let control = Control(home: home)
        let secrets: [[UInt8]]
        do {
            guard let data = try FileIO.read(control.path(secretsFile), limit: 65536) else {
                return fail(temporary, "no \(secretsFile) in \(home.control)")
            }
            secrets = Control.parseList(data)
        } catch {
            return fail(temporary, "unable to read \(secretsFile): \(error)")
        }
        guard dropPrivileges() else { return fail(temporary, "unable to drop privileges") }
        guard !secrets.isEmpty else { return fail(temporary, "\(secretsFile) holds no secret") }
        guard args.count == 3, args[1] == "forward" || args[1] == "reverse" else {
            return fail(refused, "usage: qmail-srs forward|reverse ADDRESS")
        }
        let srs = SRS(secrets: secrets)
        let address = Array(args[2].utf8)
        let answer: [UInt8]
        if args[1] == "forward" {
            let domain: [UInt8]
            do {
                guard let d = try control.line(domainFile), !d.isEmpty else { return fail(temporary, "no \(domainFile)") }
                domain = d
            } catch {
                return fail(temporary, "unable to read \(domainFile): \(error)")
            }
            answer = srs.forward(address, domain: domain, now: Sys.now())
        } else {
            switch srs.reverse(address, now: Sys.now()) {
            case .success(let a): answer = a
            case .failure(let r): return fail(refused, "\(r): \(args[2])")
            }
        }
        guard (try? Sys.writeAll(1, answer + [Ascii.lf])) != nil else { return fail(temporary, "unable to write") }
        return 0
    }

    static func fail(_ code: Int32, _ text: String) -> Int32 {
        Sys.warn("qmail-srs: " + text)
        return code
    }

    /// Real, effective and saved ids all become the caller's; true when
    /// they did and the raised ids cannot be taken back.
    static func dropPrivileges() -> Bool {
        Privileges.drop(to: Credentials(uid: getuid(), gid: getgid(), groups: .unchanged)) == nil
    }

    /// Runs qmail-srs and returns its answer. Exit 100 is a permanent
    /// refusal (5.7.1); anything else that is not an answer, temporary.
    public static func call(_ home: QmailHome, _ verb: String, _ address: [UInt8]) -> Result<[UInt8], MailFailure> {
        guard let p = try? Sys.pipeCloexec() else { return .failure(.temporary("SRS: unable to create pipe")) }
        let pid = try? ChildProcess.spawn(.init([Array(home.bin(program).utf8), Array(verb.utf8), address],
                                                program: home.bin(program), fds: [.dup(p.write, to: 1)]))
        Sys.close(p.write)
        defer { Sys.close(p.read) }
        guard let pid else {
            return .failure(.temporary("SRS: unable to run \(home.bin(program))"))
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1024)
        while out.count < 4096 {
            let n = read(p.read, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        let code = ChildProcess.wait(pid)?.exitCode
        if code == refused { return .failure(.permanent("SRS address does not verify", "5.7.1")) }
        guard code == 0, out.last == Ascii.lf, out.count > 1 else {
            return .failure(.temporary("SRS helper \(program) failed (exit \(code.map(String.init) ?? "by signal"))"))
        }
        return .success(Array(out.dropLast()))
    }
}

/// What a forwarder does with its envelope sender.
public struct SRSForwarding {
    public let home: QmailHome
    public let domain: [UInt8]
    let locals: DomainMap<Void>
    let virtualDomains: DomainMap<[UInt8]>

    /// nil when control/srsdomain is absent (SRS off); throws a temporary
    /// failure when a control file cannot be read.
    public static func load(home: QmailHome) throws -> SRSForwarding? {
        let control = Control(home: home)
        do {
            guard let domain = try control.line(SRSHelper.domainFile), !domain.isEmpty else { return nil }
            return SRSForwarding(home: home, domain: domain,
                                 locals: DomainMap(lines: try control.list("locals")),
                                 virtualDomains: DomainMap(colonLines: try control.list("virtualdomains")))
        } catch {
            throw MailFailure.temporary("unable to read controls for SRS: \(error)")
        }
    }

    /// Whether qmail-send delivers mail for `address` here: its domain is
    /// in locals, or virtualdomains has an entry for it.
    public func isLocal(_ address: [UInt8]) -> Bool {
        guard let at = address.lastIndex(of: Ascii.at) else { return true }
        let host = Array(address[(at + 1)...])
        if host.lowercasedASCII() == domain.lowercasedASCII() { return true }
        return locals.exact(host) != nil || virtualDomains.matchAddress(address) != nil
    }

    /// The sender to forward with: rewritten when a recipient is remote,
    /// unless it is the null sender, qmail's "#@[]", or one of ours.
    public func sender(_ sender: [UInt8], recipients: [[UInt8]]) -> Result<[UInt8], MailFailure> {
        if sender.isEmpty || sender == Array("#@[]".utf8) || !sender.contains(Ascii.at) { return .success(sender) }
        if isLocal(sender) || recipients.allSatisfy(isLocal) { return .success(sender) }
        return SRSHelper.call(home, "forward", sender)
    }

    /// The forwarders' entry: `sender` unchanged when SRS is off.
    public static func sender(_ sender: [UInt8], recipients: [[UInt8]], home: QmailHome) -> Result<[UInt8], MailFailure> {
        do {
            guard let f = try load(home: home) else { return .success(sender) }
            return f.sender(sender, recipients: recipients)
        } catch let e as MailFailure {
            return .failure(e)
        } catch {
            return .failure(.temporary("\(error)"))
        }
    }
}
