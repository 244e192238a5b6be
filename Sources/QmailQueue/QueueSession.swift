// One qmail-queue process for a whole SMTP session: qmail-smtpd starts
// `qmail-queue --session` at its first DATA and hands it every message of
// the connection, framed on one pipe (QueueWriter.sessionLoop), reading one
// status byte per message on another. This saves an exec per message; the
// queue program, its privileges and its fsyncs are the same as with one
// qmail-queue per message. Only our own qmail-queue speaks this: when
// QMAILQUEUE names another program, callers use QueueClient instead.
//
// Any trouble (the child died, a write failed, the caller gave up on a
// message) ends the child; the next message starts a fresh one.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// What qmail-smtpd needs from a queue program, for one message.
public protocol QueueSink: AnyObject {
    func put(_ bytes: [UInt8])
    func fail()
    func from(_ sender: [UInt8])
    func to(_ recipient: [UInt8])
    /// nil when the message is safely queued.
    func close() -> MailFailure?
    var queuePid: Int32 { get }
}

extension QueueClient: QueueSink {}

public final class QueueSession: QueueSink {
    private let program: String
    private var pid: pid_t = 0
    private var frames: ByteWriter?
    private var statusFd: Int32 = -1
    private var pending: [UInt8] = []
    private var envelope = QueueEnvelope()
    private var failed = false

    /// Message bytes go out in frames of about this size.
    static let frameSize = 65536

    public init(program: String) {
        self.program = program
        signal(SIGPIPE, SIG_IGN)
    }

    /// Whether a server should use a session with `program`: our own
    /// qmail-queue when QMAILQUEUE is not in effect (a privileged home
    /// ignores it), or our content filter HOME/bin/qmail-filter, which
    /// speaks sessions too. Any other QMAILQUEUE program keeps qmail's
    /// interface, one program per message, even when it names our own
    /// qmail-queue.
    public static func wanted(program: String, home: QmailHome) -> Bool {
        if QmailHome.isPrivileged || (Sys.getenv("QMAILQUEUE") ?? "").isEmpty { return true }
        return program == home.bin("qmail-filter")
    }

    /// The next message's queue: this session when `session` is set,
    /// else one queue program for the message.
    public static func open(_ session: QueueSession?, program: String) throws -> QueueSink {
        guard let session else { return try QueueClient(program: program) }
        try session.begin()
        return session
    }

    /// Readies the next message, starting the queue program when none is
    /// running. Throws a temporary MailFailure when it cannot be started.
    public func begin() throws {
        pending.removeAll(keepingCapacity: true)
        envelope.reset()
        failed = false
        if pid != 0 {
            // A queue program that died since the last message (killed, or
            // its alarm) is replaced rather than failing this message.
            if ChildProcess.tryWait(pid) != nil { closeChannels(); pid = 0 }
        }
        if pid == 0 { try start() }
    }

    private func closeChannels() {
        if let out = frames { Glibc.close(out.fd) }
        frames = nil
        if statusFd >= 0 { Glibc.close(statusFd) }
        statusFd = -1
    }

    private func start() throws {
        guard let data = try? Sys.pipeCloexec() else { throw MailFailure.temporary("unable to open pipe") }
        guard let status = try? Sys.pipeCloexec() else {
            Glibc.close(data.read); Glibc.close(data.write)
            throw MailFailure.temporary("unable to open pipe")
        }
        let child = try? ChildProcess.spawn(.init([program, "--session"], program: program,
                                                  fds: [.dup(data.read, to: 0), .dup(status.write, to: 1)]))
        Glibc.close(data.read)
        Glibc.close(status.write)
        guard let child else {
            Glibc.close(data.write); Glibc.close(status.read)
            throw MailFailure.temporary("unable to exec qq")
        }
        pid = child
        frames = ByteWriter(fd: data.write, capacity: QueueSession.frameSize + 5)
        statusFd = status.read
    }

    public var queuePid: Int32 { pid }

    public func put(_ bytes: [UInt8]) {
        if failed { return }
        pending += bytes
        if pending.count >= QueueSession.frameSize { sendPending() }
    }

    public func fail() { failed = true }

    public func from(_ sender: [UInt8]) { envelope.add(UInt8(ascii: "F"), sender) }

    public func to(_ recipient: [UInt8]) { envelope.add(UInt8(ascii: "T"), recipient) }

    public func close() -> MailFailure? {
        guard pid != 0, let out = frames else { return .temporary("qq crashed") }
        if failed {
            // Abandon the message: the queue program sees its input end
            // mid-message, removes what it wrote and exits.
            return verdict(stop())
        }
        sendPending()
        if !failed {
            do {
                let e = envelope.finished()
                try out.put(Self.header(UInt8(ascii: "E"), e.count))
                try out.put(e)
                try out.flush()
            } catch { failed = true }
        }
        var status: UInt8 = 0
        let n = failed ? 0 : Self.readByte(statusFd, &status)
        if n == 1 && status == 0 { return nil }
        if n == 1 && Int32(status) == QueueExit.customReply.rawValue {
            // A filter's refusal with its reason: the filter carries on
            // with the next message, so the session stays open.
            var length: UInt8 = 0
            var reason: [UInt8] = []
            if Self.readByte(statusFd, &length) == 1 {
                var b: UInt8 = 0
                while reason.count < Int(length) && Self.readByte(statusFd, &b) == 1 { reason.append(b) }
            }
            if reason.count == Int(length), let f = QueueExit.customFailure(reason) { return f }
            stop()
            return .temporary("qq protocol error")
        }
        // A failure ends the queue program; report its verdict.
        let code = stop()
        if n == 1 { return QueueExit.failure(forExitCode: Int32(status)) }
        return verdict(code)
    }

    /// The failure for a queue program that ended without a status byte.
    private func verdict(_ code: Int32?) -> MailFailure? {
        guard let code else { return .temporary("qq crashed") }
        return QueueExit.failure(forExitCode: code == 0 ? QueueExit.readError.rawValue : code)
    }

    private func sendPending() {
        guard !failed, let out = frames, !pending.isEmpty else { return }
        do {
            try out.put(Self.header(UInt8(ascii: "M"), pending.count))
            try out.put(pending)
        } catch { failed = true }
        pending.removeAll(keepingCapacity: true)
    }

    /// Ends the queue program and returns its exit code, nil when a signal
    /// ended it.
    @discardableResult
    private func stop() -> Int32? {
        closeChannels()
        let child = pid
        pid = 0
        return ChildProcess.wait(child)?.exitCode
    }

    /// The status a session's queue program writes after a message: its
    /// exit code for it, or for a refusal with a reason (code 82), the code,
    /// the reason's length in one byte and the reason ("D..." or "Z...").
    public static func status(_ code: Int32, reason: [UInt8] = []) -> [UInt8] {
        guard code == QueueExit.customReply.rawValue else { return [UInt8(truncatingIfNeeded: code)] }
        let r = reason.prefix(255)
        return [UInt8(code), UInt8(r.count)] + r
    }

    /// Reads a frame header (tag, 32-bit big-endian length); nil at end of
    /// input before a tag. Throws on input that ends inside a header.
    public static func frameHeader(_ r: ByteReader) throws -> (tag: UInt8, length: Int)? {
        guard let tag = try r.byte() else { return nil }
        var n = 0
        for _ in 0..<4 {
            guard let b = try r.byte() else { throw MailFailure.temporary("qq read error") }
            n = n << 8 | Int(b)
        }
        return (tag, n)
    }

    static func header(_ tag: UInt8, _ length: Int) -> [UInt8] {
        [tag, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
         UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)]
    }

    private static func readByte(_ fd: Int32, _ b: inout UInt8) -> Int {
        while true {
            let n = Glibc.read(fd, &b, 1)
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    deinit {
        if pid != 0 { stop() }
    }
}
