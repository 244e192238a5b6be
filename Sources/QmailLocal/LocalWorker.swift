// qmail-local -W: qmail-lspawn's delivery worker for one uid and gid.
// qmail-lspawn starts it once, already running as that user, and hands it
// deliveries over the SOCK_SEQPACKET socket on fd 0 (LocalWorkerProtocol)
// instead of starting qmail-local afresh for each: an exec of qmail-local
// costs more CPU than the delivery itself. Each delivery still runs in a
// process of its own, forked without an exec and set up as qmail-lspawn
// sets up qmail-local: message on fd 0, report pipe on fds 1 and 2,
// qmail-local's operands and exit code. That process reports its exit code
// on the status pipe itself, so a worker that dies loses no result: what
// it has started finishes and reports, what it has not is never reported
// done. Exits 0 at end of file on fd 0, or when idle (idleSeconds without
// a request). Trusts its one peer, qmail-lspawn, as qmail-local trusts its
// arguments.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum LocalWorker {
    /// A worker with no request for this long exits.
    public static let idleSeconds: Int32 = 10

    /// Serves requests on fd 0 until end of file; returns the exit code.
    public static func serve(inProcess: InProcessProgram?) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Deliveries report on their status pipes: nothing to wait for.
        signal(SIGCHLD, SIG_IGN)
        // Received descriptors must not land on 1 or 2.
        for fd: Int32 in 1...2 where fcntl(fd, F_GETFD) < 0 { _ = Glibc.open("/dev/null", O_RDWR) }
        var closing = false
        while true {
            if !closing {
                var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, idleSeconds * 1000)
                if r < 0 && errno != EINTR { return QmailExit.temporary }
                if r == 0 {
                    // Idle: no worker waits around for a user who gets
                    // mail once a day. After shutdown qmail-lspawn's sends
                    // fail (it starts a new worker), and what it sent
                    // before is still read and served below.
                    _ = shutdown(0, Int32(SHUT_RD))
                    closing = true
                }
                if r <= 0 && !closing { continue }
            }
            let got: (bytes: [UInt8], fds: [Int32])?
            do { got = try PacketSocket.receive(0) } catch let e as SysError where e.errno == EINTR {
                continue
            } catch {
                return QmailExit.temporary
            }
            guard let (bytes, fds) = got else { return 0 }
            start(bytes, fds, inProcess: inProcess)
        }
    }

    /// Forks the process for one request. A request that is not whole, or
    /// a fork that fails, closes the status pipe unwritten: a temporary
    /// failure for qmail-lspawn.
    static func start(_ bytes: [UInt8], _ fds: [Int32], inProcess: InProcessProgram?) {
        defer { for fd in fds { Sys.close(fd) } }
        guard fds.count == 3, let ops = LocalWorkerProtocol.parse(bytes) else { return }
        _ = try? ChildProcess.forkRunning {
            signal(SIGCHLD, SIG_DFL)
            let status = fds[2]
            var code = QLX.sys
            if ChildProcess.arrange([.dup(fds[0], to: 0), .dup(fds[1], to: 1), .dup(fds[1], to: 2)]) == nil {
                Sys.close(fds[0])
                Sys.close(fds[1])
                code = LocalDelivery.main([Array("--".utf8)] + ops, inProcess: inProcess)
            }
            var b = UInt8(truncatingIfNeeded: code)
            _ = Glibc.write(status, &b, 1)
            return code
        }
    }
}
