// qmail-lspawn's delivery workers: one `qmail-local -W` per uid and gid,
// started as that user and kept running, which takes deliveries over a
// SOCK_SEQPACKET socket (LocalWorkerProtocol). The worker runs each one in
// a process forked from it (a runner, reused for the next delivery), which
// writes its exit code to a status pipe whose other end is ours: the
// report never depends on the worker. A status pipe
// closed without a code is a delivery that died or never started: a
// temporary failure, as when qmail-local crashes. A worker found gone is
// replaced at the next delivery.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

final class DeliveryWorkers {
    /// Workers kept at once; users beyond them take qmail-local's exec.
    static let limit = 16

    struct Key: Hashable { let uid: uid_t; let gid: gid_t }

    let program: String
    /// The socket to each worker.
    var workers: [Key: Int32] = [:]
    /// Status pipe of each running delivery -> its id for SpawnServer.
    var running: [Int32: pid_t] = [:]
    var lastId: pid_t = 0

    init(program: String) { self.program = program }

    var statusPipes: [Int32] { Array(running.keys) }

    /// Starts a delivery in the worker for `credentials` (nil: our own
    /// ids); returns its id for SpawnServer (negative, never a pid), or nil
    /// when no worker takes it.
    func start(credentials: Credentials?, operands: [[UInt8]], message: Int32, output: Int32) -> pid_t? {
        let key = Key(uid: credentials?.uid ?? geteuid(), gid: credentials?.gid ?? getegid())
        guard let status = try? Sys.pipeCloexec() else { return nil }
        defer { Sys.close(status.write) }
        let request = LocalWorkerProtocol.request(operands: operands)
        for _ in 0..<2 {
            guard let sock = workers[key] ?? launch(key, credentials) else { break }
            do {
                try PacketSocket.send(sock, request, fds: [message, output, status.write])
                _ = fcntl(status.read, F_SETFL, O_NONBLOCK)
                lastId = lastId <= -pid_t.max ? -1 : lastId - 1
                running[status.read] = lastId
                return lastId
            } catch let e as SysError where e.errno == EAGAIN {
                break  // far behind: this delivery takes the exec
            } catch {
                workers[key] = nil  // gone: a fresh one, once
                Sys.close(sock)
            }
        }
        Sys.close(status.read)
        return nil
    }

    func launch(_ key: Key, _ credentials: Credentials?) -> Int32? {
        guard workers.count < Self.limit, let (mine, theirs) = try? PacketSocket.pair() else { return nil }
        defer { Sys.close(theirs) }
        _ = fcntl(mine, F_SETFL, O_NONBLOCK)
        let plan = ChildProcess.Plan(program: program, argv: [Array("qmail-local".utf8), LocalWorkerProtocol.flag],
                                     fds: [.dup(theirs, to: 0), .open("/dev/null", flags: O_WRONLY, to: 1)],
                                     credentials: credentials)
        guard (try? ChildProcess.spawn(plan)) != nil else { Sys.close(mine); return nil }
        workers[key] = mine
        return mine
    }

    /// The deliveries whose status pipe has the exit code or is closed.
    func collect() -> [HelperEnd] {
        var ends: [HelperEnd] = []
        for (fd, id) in running {
            var b: UInt8 = 0
            var n: Int
            repeat { n = Glibc.read(fd, &b, 1) } while n < 0 && errno == EINTR
            if n < 0 && errno == EAGAIN { continue }
            ends.append(HelperEnd(id: id, status: n == 1 ? .exited(Int32(b)) : .signaled(SIGKILL)))
            running[fd] = nil
            Sys.close(fd)
        }
        return ends
    }
}
