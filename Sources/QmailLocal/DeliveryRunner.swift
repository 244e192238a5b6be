// A delivery worker's runner: a process forked from the worker (no exec,
// same uid and gid) that runs deliveries one after another, each set up
// exactly as a process of its own would be (message on fd 0, report pipe on
// fds 1 and 2, qmail-local's operands and exit code on the status pipe).
// Reusing it saves, per delivery, a fork, the page faults of a fresh copy
// of the worker, and an exit; that was about 0.8 ms of CPU per message,
// more than the delivery itself.
//
// What a fresh process would have had is put back after each delivery:
// the worker's environment (qmail-local sets HOST, EXT, DEFAULT and the
// rest for .qmail programs), the directory, the umask, no alarm, and
// descriptors 0 to 2 on /dev/null with nothing else open but the runner's
// socket. So one delivery cannot see another's variables, files or locks.
// All deliveries of one runner are for one uid and gid, which share their
// files anyway: reuse crosses no privilege boundary.
//
// Crashes stay local to one delivery: a runner that dies takes only the
// delivery it is running, whose status pipe then closes unwritten (a
// temporary failure, retried), and the worker starts another runner. A
// runner serves at most `deliveries` requests and then exits, so anything
// a delivery leaks (memory) is bounded.
//
// Protocol with the worker, on the runner's own SOCK_SEQPACKET socket: the
// worker sends a LocalWorkerProtocol record (operands, three descriptors)
// only while the runner is idle; the runner answers one byte when it is
// idle again, just before it writes the delivery's status (not after its
// last delivery: it exits instead). End of file on the socket: exit.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

enum DeliveryRunner {
    /// Deliveries one runner serves before it exits.
    static let deliveries = 1000
    /// The runner's socket, and /dev/null kept open for resetting 0 to 2.
    static let socketFd: Int32 = 3
    static let nullFd: Int32 = 4

    /// The runner's whole life, in the forked child; returns its exit code.
    static func run(socket: Int32, inProcess: InProcessProgram?) -> Int32 {
        signal(SIGCHLD, SIG_DFL)
        // Close-on-exec, so that a .qmail program never holds it.
        // The socket first: /dev/null may be opened on fd 3.
        guard place(socket, at: socketFd), place(Glibc.open("/dev/null", O_RDWR | O_CLOEXEC), at: nullFd) else {
            return QmailExit.temporary
        }
        resetStandardDescriptors()
        let environment = Environment.snapshot()
        // Nothing of the worker's but this socket (its other runners'
        // sockets and its end of qmail-lspawn's must not be held open
        // here), and the state every delivery starts from.
        tidy(environment)
        for served in 1...deliveries {
            var got: (bytes: [UInt8], fds: [Int32])?
            repeat {
                do { got = try PacketSocket.receive(socketFd); break } catch let e as SysError where e.errno == EINTR {
                    continue
                } catch {
                    return QmailExit.temporary
                }
            } while true
            guard let (bytes, fds) = got else { return 0 }
            var workerGone = false
            deliver(bytes, fds, inProcess: inProcess) {
                // Idle again before the status says the delivery is over:
                // whatever the status sets off (qmail-send's next delivery)
                // then finds this runner idle, not busy for a moment more
                // (which would fork another runner). A request that comes
                // meanwhile waits in the socket until the tidying is done.
                if served < deliveries { workerGone = (try? PacketSocket.send(socketFd, [1])) == nil }
            }
            tidy(environment)
            if workerGone { return 0 }
        }
        return 0
    }

    /// Puts back, after a delivery (and once before the first), what a
    /// fresh process would have: the worker's environment, no descriptor
    /// above /dev/null's (deliver leaves 0 to 2 on it), `/` (so an idle
    /// runner holds no user's directory), no alarm, umask 077.
    static func tidy(_ environment: Environment) {
        environment.restore()
        closeDescriptors(above: nullFd)
        _ = chdir("/")
        alarm(0)
        umask(0o077)
    }

    /// Runs one request: the delivery's exit code goes on its status pipe,
    /// as the forked process of LocalWorker.start writes it; `done` runs
    /// just before. A request that is not whole leaves the status pipe
    /// unwritten: a temporary failure.
    static func deliver(_ bytes: [UInt8], _ fds: [Int32], inProcess: InProcessProgram?, done: () -> Void = {}) {
        guard fds.count == 3, let ops = LocalWorkerProtocol.parse(bytes) else { done(); return }
        var code = QLX.sys
        if ChildProcess.arrange([.dup(fds[0], to: 0), .dup(fds[1], to: 1), .dup(fds[1], to: 2)]) == nil {
            Sys.close(fds[0])
            Sys.close(fds[1])
            code = LocalDelivery.main([Array("--".utf8)] + ops, inProcess: inProcess)
        }
        // The report pipe is closed before the status is written, as when
        // the delivery's process exits.
        resetStandardDescriptors()
        done()
        var b = UInt8(truncatingIfNeeded: code)
        _ = Glibc.write(fds[2], &b, 1)
    }

    /// Moves `fd` to `to`, close-on-exec there.
    static func place(_ fd: Int32, at to: Int32) -> Bool {
        guard fd >= 0 else { return false }
        if fd == to { return fcntl(to, F_SETFD, FD_CLOEXEC) == 0 }
        defer { Glibc.close(fd) }
        return dup2(fd, to) == to && fcntl(to, F_SETFD, FD_CLOEXEC) == 0
    }

    static func resetStandardDescriptors() {
        for fd: Int32 in 0...2 { _ = dup2(nullFd, fd) }
    }

    /// Closes every descriptor above `fd` (close_range(2) is not in Swift's
    /// Glibc; /proc lists what is open).
    static func closeDescriptors(above fd: Int32) {
        var open: [Int32] = []
        if let dir = opendir("/proc/self/fd") {
            let own = dirfd(dir)
            while let e = readdir(dir) {
                let n = withUnsafeBytes(of: e.pointee.d_name) { raw -> Int32? in
                    let s = raw.prefix { $0 != 0 }
                    guard !s.isEmpty, s.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
                    return s.reduce(Int32(0)) { $0 &* 10 &+ Int32($1 - 48) }
                }
                if let n, n > fd, n != own { open.append(n) }
            }
            closedir(dir)
        } else {
            open = Array((fd + 1)..<1024)
        }
        for n in open { Glibc.close(n) }
    }
}

/// A copy of the process environment, put back whole.
struct Environment {
    /// Each variable's name and value, NUL-terminated, split once here
    /// rather than at every restore.
    let entries: [(name: [CChar], value: [CChar])]

    static func snapshot() -> Environment {
        var out: [(name: [CChar], value: [CChar])] = []
        var p = environ
        while let s = p.pointee {
            let e = UnsafeBufferPointer(start: s, count: strlen(s))
            if let eq = e.firstIndex(of: 61) {  // '='
                out.append((Array(e[..<eq]) + [0], Array(e[(eq + 1)...]) + [0]))
            }
            p += 1
        }
        return Environment(entries: out)
    }

    func restore() {
        _ = clearenv()
        for e in entries { _ = setenv(e.name, e.value, 1) }
    }
}
