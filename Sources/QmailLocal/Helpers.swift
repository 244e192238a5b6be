// The small programs used from .qmail files: preline, condredirect,
// bouncesaying, except, forward, maildirmake, maildir2mbox, splogger, one
// in each Helpers+<Program>.swift; here, what several of them share.
// Each runs as the delivering user (or, splogger, as a logger); each main
// returns the exit code its man page documents.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public enum Helpers {
    /// Prints "prefix: fatal: text" (or the bare text) and returns `code`.
    static func fail(_ code: Int32, _ text: String) -> Int32 {
        say(2, text + "\n")
        return code
    }

    /// Runs argv with our stdin and waits. Exec failure: 111 when the
    /// error is temporary, else 100 (as the child's exit code).
    /// Nil when the child crashed (reported; the caller exits 111).
    static func runChild(_ argv: [[UInt8]], prog: String) -> Int32? {
        let pid: pid_t
        do { pid = try ChildProcess.spawn(.init(argv)) } catch { return QmailExit.failure(temporary: errnoIsTemporary(error.errno)) }
        switch ChildProcess.wait(pid) {
        case .exited(let c)?: return c
        case .signaled?, nil: _ = fail(QmailExit.temporary, "\(prog): fatal: child crashed"); return nil
        }
    }

    /// Queues stdin, preceded by `prefix`, from `sender` to `recipients`.
    /// Returns qmail-queue's pid or the failure.
    /// With SRS on, a sender forwarded to a remote domain is rewritten first.
    static func queue(prefix: [UInt8], sender: [UInt8], recipients: [[UInt8]]) -> Result<Int32, MailFailure> {
        signal(SIGPIPE, SIG_IGN)
        let home = QmailHome.current()
        let envelopeSender: [UInt8]
        switch SRSForwarding.sender(sender, recipients: recipients, home: home) {
        case .success(let s): envelopeSender = s
        case .failure(let f): return .failure(f)
        }
        let q: QueueClient
        do {
            q = try QueueClient(program: QueueClient.program(home: home, honourEnvironment: true))
        } catch let f as MailFailure { return .failure(f) } catch { return .failure(.temporary("unable to fork")) }
        q.put(prefix)
        let r = ByteReader(fd: 0, capacity: 65536)
        do { try r.forEachChunk { q.put($0) } } catch {
            // Leave without the envelope: qmail-queue queues nothing.
            return .failure(.temporary("unable to read message: \(Sys.strerror(errno))"))
        }
        q.from(envelopeSender)
        for x in recipients { q.to(x) }
        let qp = q.queuePid
        if let f = q.close() { return .failure(f) }
        return .success(qp)
    }
}
