// qmail-local -W: qmail-lspawn's delivery worker for one uid and gid.
// qmail-lspawn starts it once, already running as that user, and hands it
// deliveries over the SOCK_SEQPACKET socket on fd 0 (LocalWorkerProtocol)
// instead of starting qmail-local afresh for each: an exec of qmail-local
// costs more CPU than the delivery itself. The worker only dispatches: it
// hands each delivery to an idle runner (DeliveryRunner), a process forked
// from it that runs deliveries one at a time, set up as qmail-lspawn sets
// up qmail-local: message on fd 0, report pipe on fds 1 and 2,
// qmail-local's operands and exit code. With no idle runner it forks
// another, up to `runners`; beyond that a delivery gets a process of its
// own, which exits after it. Whoever runs a delivery writes its exit code
// on the status pipe itself, so a worker that dies loses no result: what
// it has started finishes and reports, what it has not is never reported
// done. Exits 0 at end of file on fd 0, or when idle (idleSeconds without
// a request); its runners exit when they see it gone. Trusts its one peer,
// qmail-lspawn, as qmail-local trusts its arguments.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum LocalWorker {
    /// A worker with no request for this long exits.
    public static let idleSeconds: Int32 = 10
    /// Runners kept at once (qmail-lspawn runs at most concurrencylocal
    /// deliveries in all).
    static let runners = 64

    /// Serves requests on fd 0 until end of file; returns the exit code.
    public static func serve(inProcess: InProcessProgram?) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Deliveries and runners report on their pipes and sockets:
        // nothing to wait for.
        signal(SIGCHLD, SIG_IGN)
        // Received descriptors must not land on 1 or 2.
        for fd: Int32 in 1...2 where fcntl(fd, F_GETFD) < 0 { _ = Glibc.open("/dev/null", O_RDWR) }
        let pool = RunnerPool(inProcess: inProcess)
        defer { pool.closeAll() }
        var closing = false
        while true {
            var pfds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            let watched = pool.sockets
            for fd in watched { pfds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let r = poll(&pfds, nfds_t(pfds.count), closing ? -1 : idleSeconds * 1000)
            if r < 0 && errno != EINTR { return QmailExit.temporary }
            if r == 0 {
                // Idle: no worker waits around for a user who gets mail
                // once a day. After shutdown qmail-lspawn's sends fail (it
                // starts a new worker), and what it sent before is still
                // read and served below.
                _ = shutdown(0, Int32(SHUT_RD))
                closing = true
                pfds[0].revents = Int16(POLLIN)
            }
            if r < 0 { continue }
            for (i, fd) in watched.enumerated() where pfds[i + 1].revents != 0 { pool.heard(fd) }
            if pfds[0].revents == 0 { continue }
            let got: (bytes: [UInt8], fds: [Int32])?
            do { got = try PacketSocket.receive(0) } catch let e as SysError where e.errno == EINTR || e.errno == EAGAIN {
                continue
            } catch {
                return QmailExit.temporary
            }
            guard let (bytes, fds) = got else { return 0 }
            defer { for fd in fds { Sys.close(fd) } }
            if !pool.dispatch(bytes, fds) { start(bytes, fds, inProcess: inProcess) }
        }
    }

    /// Forks a process for one request, which exits after it. A request
    /// that is not whole (DeliveryRunner.deliver), or a fork that fails,
    /// closes the status pipe unwritten: a temporary failure for qmail-lspawn.
    static func start(_ bytes: [UInt8], _ fds: [Int32], inProcess: InProcessProgram?) {
        _ = try? ChildProcess.forkRunning {
            signal(SIGCHLD, SIG_DFL)
            DeliveryRunner.deliver(bytes, fds, inProcess: inProcess)
            return 0
        }
    }
}

/// The worker's runners: the socket to each, and which are idle.
final class RunnerPool {
    let inProcess: InProcessProgram?
    var idle: [Int32] = []
    var busy: Set<Int32> = []

    init(inProcess: InProcessProgram?) { self.inProcess = inProcess }

    var sockets: [Int32] { idle + Array(busy) }

    /// Hands the request to an idle runner, or to a new one; false when
    /// none takes it. (The runner judges the request: one that is not
    /// whole fails there alone.)
    func dispatch(_ bytes: [UInt8], _ fds: [Int32]) -> Bool {
        while let sock = idle.popLast() {
            if (try? PacketSocket.send(sock, bytes, fds: fds)) != nil { busy.insert(sock); return true }
            Sys.close(sock)  // gone (its socket said so before we heard)
        }
        guard idle.count + busy.count < LocalWorker.runners, let sock = launch() else { return false }
        if (try? PacketSocket.send(sock, bytes, fds: fds)) != nil { busy.insert(sock); return true }
        Sys.close(sock)
        return false
    }

    func launch() -> Int32? {
        guard let (mine, theirs) = try? PacketSocket.pair() else { return nil }
        let inProcess = self.inProcess
        let pid = try? ChildProcess.forkRunning { DeliveryRunner.run(socket: theirs, inProcess: inProcess) }
        Sys.close(theirs)
        guard pid != nil else { Sys.close(mine); return nil }
        return mine
    }

    /// The runner on `sock` has said it is idle, or has gone.
    func heard(_ sock: Int32) {
        var b: UInt8 = 0
        let n = recv(sock, &b, 1, Int32(MSG_DONTWAIT))
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n == 1, busy.remove(sock) != nil {
            idle.append(sock)
            return
        }
        // End of file (exited after its last delivery, or crashed), or a
        // word from a runner that was not busy: done with it.
        busy.remove(sock)
        idle.removeAll { $0 == sock }
        Sys.close(sock)
    }

    func closeAll() {
        for fd in sockets { Sys.close(fd) }
        idle = []
        busy = []
    }
}
