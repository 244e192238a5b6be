// Hands a message to qmail-queue, as qmail's qmail_open/qmail_close do:
// the message goes down one pipe (qmail-queue's fd 0), the envelope down
// another (its fd 1), and the exit status is mapped to a MailFailure.
// QMAILQUEUE names a replacement queue program where qmail honours it
// (injectors run by users or by the network, never setuid code).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public final class QueueClient {
    private let pid: pid_t
    private let message: ByteWriter
    private var messageFd: Int32
    private var envelopeFd: Int32
    private var writeFailed = false
    private var envelope = QueueEnvelope()
    private var reasonFd: Int32 = -1

    /// The queue program's descriptor for a refusal's reason, read when it
    /// exits 82 (qmail-queue-custom-error's descriptor, which simscan uses).
    public static let reasonFd: Int32 = 4

    /// The program to run: QMAILQUEUE when `honourEnvironment` and set, else HOME/bin/qmail-queue.
    public static func program(home: QmailHome, honourEnvironment: Bool) -> String {
        if honourEnvironment, !QmailHome.isPrivileged, let q = Sys.getenv("QMAILQUEUE"), !q.isEmpty { return q }
        return home.bin("qmail-queue")
    }

    /// Starts the queue program. Throws a temporary MailFailure when it cannot be started.
    public init(program: String) throws {
        guard let m = try? Sys.pipeCloexec() else { throw MailFailure.temporary("unable to open pipe") }
        guard let e = try? Sys.pipeCloexec() else {
            Glibc.close(m.read); Glibc.close(m.write)
            throw MailFailure.temporary("unable to open pipe")
        }
        guard let r = try? Sys.pipeCloexec() else {
            Glibc.close(m.read); Glibc.close(m.write); Glibc.close(e.read); Glibc.close(e.write)
            throw MailFailure.temporary("unable to open pipe")
        }
        let child = try? ChildProcess.spawn(.init([program], program: program,
                                                  fds: [.dup(m.read, to: 0), .dup(e.read, to: 1), .dup(r.write, to: QueueClient.reasonFd)]))
        Glibc.close(m.read)
        Glibc.close(e.read)
        Glibc.close(r.write)
        guard let child else {
            Glibc.close(m.write); Glibc.close(e.write); Glibc.close(r.read)
            throw MailFailure.temporary("unable to exec qq")
        }
        pid = child
        reasonFd = r.read
        messageFd = m.write
        envelopeFd = e.write
        message = ByteWriter(fd: m.write, capacity: 65536)
        signal(SIGPIPE, SIG_IGN)
    }

    public func put(_ bytes: [UInt8]) {
        if writeFailed { return }
        do { try message.put(bytes) } catch { writeFailed = true }
    }

    public func put(_ raw: UnsafeRawBufferPointer) {
        if writeFailed { return }
        do { try message.put(raw) } catch { writeFailed = true }
    }

    public func put(_ s: String) { put(Array(s.utf8)) }

    /// Makes sure the message is not queued (qmail_fail): close() then
    /// withholds the envelope, so the queue program exits without queuing.
    public func fail() { writeFailed = true }

    public func from(_ sender: [UInt8]) { envelope.add(UInt8(ascii: "F"), sender) }

    public func to(_ recipient: [UInt8]) { envelope.add(UInt8(ascii: "T"), recipient) }

    /// Sends the envelope, waits for the queue program, and reports its
    /// verdict: nil when the message is safely queued.
    public func close() -> MailFailure? {
        if !writeFailed {
            do { try message.flush() } catch { writeFailed = true }
        }
        Glibc.close(messageFd)
        messageFd = -1
        if !writeFailed {
            do { try Sys.writeAll(envelopeFd, envelope.finished()) } catch { writeFailed = true }
        }
        Glibc.close(envelopeFd)
        envelopeFd = -1
        guard let status = ChildProcess.wait(pid) else { Glibc.close(reasonFd); return .temporary("qq crashed") }
        let reason = QueueClient.drain(reasonFd)
        Glibc.close(reasonFd)
        reasonFd = -1
        guard let code = status.exitCode else { return .temporary("qq crashed") }
        if code == 0 && writeFailed { return QueueExit.failure(forExitCode: 54) }
        if code == QueueExit.customReply.rawValue, let f = QueueExit.customFailure(reason) { return f }
        return QueueExit.failure(forExitCode: code)
    }

    /// What the exited program left in the reason pipe, at most 1 kB and
    /// without waiting: a descendant still holding the pipe cannot stall us.
    static func drain(_ fd: Int32) -> [UInt8] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1024)
        while out.count < 1024 {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 1024 - out.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// The qmail-queue process id, for "qp" in logs and replies.
    public var queuePid: Int32 { pid }
}

/// qmail-queue's envelope as callers build it: F sender, T recipients,
/// each NUL-terminated, and a final NUL.
struct QueueEnvelope {
    private var bytes: [UInt8] = []

    mutating func add(_ tag: UInt8, _ address: [UInt8]) {
        bytes.append(tag)
        bytes += address
        bytes.append(0)
    }

    mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    func finished() -> [UInt8] { bytes + [0] }
}
