// qmail-queue: puts one message into the queue.
//
// Reads the message on fd 0 and the envelope on fd 1 (F sender \0, then
// T recipient \0 for each recipient, then \0). Runs setuid qmailq in a
// multi-user installation, so it takes nothing from its caller but the two
// descriptors: its home comes from QmailHome's trusted rules.
//
// Durability: the message file, its directory entry and the envelope are
// fsync'd before the envelope is linked into todo/, and todo/ is fsync'd
// before exit 0. qmail-send looks only at todo/, so a crash
// at any earlier instant leaves nothing that will be delivered (qmail-clean
// removes the leftovers), and after exit 0 nothing is lost.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum QueueWriter {
    /// Longest envelope address, as in qmail.
    public static let maxAddress = 1003
    /// qmail-queue gives up after a day, well below qmail-send's 36-hour limit for leftovers.
    public static let deathSeconds: UInt32 = 86400

    struct Exit: Error { let code: QueueExit }

    /// The fsyncs before the link into todo/, run side by side.
    static let fsyncs = FsyncGroup(helpers: 2)

    /// The Received line qmail-queue prepends. The caller is named as qmail
    /// does: the alias user, qmaild ("from network"), qmails ("for
    /// bounce"), or a numeric uid.
    public static func receivedLine(pid: Int32, uid: uid_t, time: Int, ids: QmailIds?) -> [UInt8] {
        let who: String
        if let ids, !ids.singleUser, ids.uid("alias") == uid {
            who = "invoked by alias"
        } else if let ids, !ids.singleUser, ids.uid("qmaild") == uid {
            who = "invoked from network"
        } else if let ids, !ids.singleUser, ids.uid("qmails") == uid {
            who = "invoked for bounce"
        } else {
            who = "invoked by uid \(uid)"
        }
        return Array("Received: (qmail \(pid) \(who)); \(Date822.qmail(time))\n".utf8)
    }

    /// Runs qmail-queue in this process and returns its exit code. With
    /// `session` it queues one message after another from framed input
    /// (see QueueSession) instead of one message from fd 0 and fd 1.
    public static func main(home: QmailHome = QmailHome.current(), session: Bool = false) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        Sys.exitOnAlarm(code: QueueExit.timeout.rawValue)
        alarm(deathSeconds)
        umask(0o033)
        let ids = try? QmailIds.load(home: home)
        guard chdir(home.path) == 0 else { return QueueExit.homeDirectory.rawValue }
        guard chdir("queue") == 0 else { return QueueExit.queueDirectory.rawValue }
        if session { return sessionLoop(ids: ids) }
        let message = ByteReader(fd: 0, capacity: 65536)
        let envelope = ByteReader(fd: 1, capacity: 8192)
        let input = MessageInput(
            copyMessage: { put in try message.forEachChunk(put) },
            envelopeByte: { try envelope.byte() })
        return queueOne(ids: ids, input: input)
    }

    /// Where one message comes from: its bytes, then its envelope byte by
    /// byte (nil at the end of the input).
    struct MessageInput {
        let copyMessage: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
        let envelopeByte: () throws -> UInt8?
    }

    /// Queues one message; returns qmail-queue's exit code for it.
    static func queueOne(ids: QmailIds?, input: MessageInput) -> Int32 {
        var state = State()
        do {
            try run(&state, ids: ids, input: input)
            return 0
        } catch let e as Exit {
            state.cleanup()
            return e.code.rawValue
        } catch {
            state.cleanup()
            return QueueExit.internalBug.rawValue
        }
    }

    /// Session mode, for a client that queues many messages (qmail-smtpd):
    /// fd 0 carries frames, a tag byte and a 32-bit big-endian length, then
    /// that many bytes: "M" for message bytes, "E" for the envelope in
    /// qmail-queue's fd-1 format, which ends the message. After each
    /// message one byte goes out on fd 1: the exit code qmail-queue would
    /// have had for it, written only once the message is as safe as when
    /// qmail-queue exits 0. After a failure the process exits with that
    /// code; at end of input between messages it exits 0. Each message is
    /// queued exactly as in the one-message mode, with the same fsyncs.
    static func sessionLoop(ids: QmailIds?) -> Int32 {
        let frames = ByteReader(fd: 0, capacity: 65536)
        while true {
            let tag: UInt8?
            do { tag = try frames.byte() } catch { return QueueExit.readError.rawValue }
            guard let first = tag else { return 0 }
            alarm(deathSeconds)
            var pendingTag: UInt8? = first
            var envelope: [UInt8] = []
            var envelopeAt = 0
            let input = MessageInput(
                copyMessage: { put in
                    while true {
                        let t: UInt8
                        if let p = pendingTag { t = p; pendingTag = nil } else {
                            guard let b = try frames.byte() else { throw Exit(code: .readError) }
                            t = b
                        }
                        let length = try frameLength(frames)
                        switch t {
                        case UInt8(ascii: "M"):
                            guard try frames.copy(count: length, put) else { throw Exit(code: .readError) }
                        case UInt8(ascii: "E"):
                            guard length <= maxEnvelope, let e = try frames.bytes(count: length) else {
                                throw Exit(code: .readError)
                            }
                            envelope = e
                            return
                        default:
                            throw Exit(code: .readError)
                        }
                    }
                },
                envelopeByte: {
                    guard envelopeAt < envelope.count else { return nil }
                    envelopeAt += 1
                    return envelope[envelopeAt - 1]
                })
            let code = queueOne(ids: ids, input: input)
            do { try Sys.writeAll(1, [UInt8(truncatingIfNeeded: code)]) } catch {
                return code == 0 ? QueueExit.writeError.rawValue : code
            }
            if code != 0 { return code }
        }
    }

    /// Longest envelope frame accepted in session mode: the recipient limit
    /// of any client is far below this.
    static let maxEnvelope = 64 << 20

    static func frameLength(_ r: ByteReader) throws -> Int {
        var n = 0
        for _ in 0..<4 {
            guard let b = try r.byte() else { throw Exit(code: .readError) }
            n = n << 8 | Int(b)
        }
        return n
    }

    struct State {
        var messPath: String?
        var messFd: Int32 = -1
        var intdPath: String?
        var intdFd: Int32 = -1

        /// Truncates and removes what this run created, as qmail does, so a
        /// failed injection leaves no half-written entry.
        func cleanup() {
            if let p = intdPath {
                if intdFd >= 0 { _ = ftruncate(intdFd, 0) }
                _ = unlink(p)
            }
            if let p = messPath {
                if messFd >= 0 { _ = ftruncate(messFd, 0) }
                _ = unlink(p)
            }
        }
    }

    static func run(_ s: inout State, ids: QmailIds?, input: MessageInput) throws {
        let pid = getpid()
        let uid = getuid()
        let start = Sys.now()
        let received = receivedLine(pid: pid, uid: uid, time: start, ids: ids)

        // A private name in pid/ gives a fresh inode: its number names the message.
        var pidPath = ""
        var fd: Int32 = -1
        for seq in 1..<10 {
            pidPath = "pid/\(pid).\(start).\(seq)"
            fd = Glibc.open(pidPath, O_WRONLY | O_EXCL | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { break }
        }
        guard fd >= 0 else { throw Exit(code: .queuePid) }
        s.messFd = fd
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw Exit(code: .queuePid) }
        let num = Int(st.st_ino)
        let messPath = "mess/\(num % QueueLayout.split)/\(num)"
        guard link(pidPath, messPath) == 0 else {
            _ = unlink(pidPath)
            throw Exit(code: .queueMess)
        }
        s.messPath = messPath
        guard unlink(pidPath) == 0 else { throw Exit(code: .queuePid) }

        // The message: Received line, then fd 0 copied as is.
        let out = ByteWriter(fd: fd, capacity: 65536)
        do { try out.put(received) } catch { throw Exit(code: .writeError) }
        var readFailed = false
        do {
            try input.copyMessage { chunk in
                do { try out.put(chunk) } catch { throw Exit(code: .writeError) }
            }
        } catch let e as Exit {
            throw e
        } catch {
            readFailed = true
        }
        if readFailed { throw Exit(code: .readError) }
        do { try out.flush() } catch { throw Exit(code: .writeError) }

        // The envelope, from fd 1, into intd/N. Both files are written
        // before either is fsync'd: on a journaling filesystem the first
        // fsync then commits the metadata of both in one transaction, and
        // the later ones find nothing left to commit. intd/ is invisible to
        // qmail-send, so an envelope that outlives a crash is only a
        // leftover for qmail-clean, as before.
        let intdPath = "intd/\(num)"
        let ifd = Glibc.open(intdPath, O_WRONLY | O_EXCL | O_CREAT | O_CLOEXEC, 0o644)
        guard ifd >= 0 else { throw Exit(code: .queueIntd) }
        s.intdPath = intdPath
        s.intdFd = ifd
        let env = ByteWriter(fd: ifd, capacity: 8192)
        func get() throws -> UInt8 {
            do {
                guard let c = try input.envelopeByte() else { throw Exit(code: .readError) }
                return c
            } catch let e as Exit { throw e } catch { throw Exit(code: .readError) }
        }
        func put(_ b: [UInt8]) throws {
            do { try env.put(b) } catch { throw Exit(code: .writeError) }
        }
        try put(Array("u\(uid)\0p\(pid)\0".utf8))
        try copyEnvelope(get, put)
        do {
            try env.flush()
            // Both files' data written out together first, so that the
            // first fsync commits both (Sys.writeOut says why); then the
            // message's directory and both files fsync'd at once
            // (FsyncGroup says why), the directory first: with qmail-clean
            // removing other messages from it meanwhile, fsync'd last it
            // found a change after the files' commit and waited for another.
            Sys.writeOut([fd, ifd])
            let dir = try Sys.open("mess/\(num % QueueLayout.split)", O_RDONLY | O_DIRECTORY)
            defer { Sys.close(dir) }
            guard !fsyncs.fsync([dir, fd, ifd]).contains(false) else { throw Exit(code: .writeError) }
        } catch { throw Exit(code: .writeError) }
        // Only now, with message, envelope and the message's name on disk,
        // does the message become visible to qmail-send.
        guard link(intdPath, "todo/\(num)") == 0 else { throw Exit(code: .queueTodo) }
        do { try Sys.fsyncDirectory("todo") } catch { throw Exit(code: .writeError) }
        Sys.close(ifd)
        Sys.close(fd)
        pullTrigger("lock/trigger")
    }

    /// Copies the envelope from qmail-queue's fd 1: "F" sender NUL, then
    /// "T" recipient NUL for each recipient, then a NUL (not copied).
    static func copyEnvelope(_ get: () throws -> UInt8, _ put: ([UInt8]) throws -> Void) throws {
        guard try get() == UInt8(ascii: "F") else { throw Exit(code: .envelopeFormat) }
        try put([UInt8(ascii: "F")])
        try copyAddress(get, put)
        while true {
            let c = try get()
            if c == 0 { break }
            guard c == UInt8(ascii: "T") else { throw Exit(code: .envelopeFormat) }
            try put([c])
            try copyAddress(get, put)
        }
    }

    /// Copies one NUL-terminated address, refusing one longer than qmail's limit.
    static func copyAddress(_ get: () throws -> UInt8, _ put: ([UInt8]) throws -> Void) throws {
        var addr: [UInt8] = []
        while true {
            let c = try get()
            addr.append(c)
            if c == 0 { break }
            if addr.count >= maxAddress { throw Exit(code: .addressTooLong) }
        }
        try put(addr)
    }

    /// Wakes qmail-send through its fifo; harmless when nobody listens.
    public static func pullTrigger(_ path: String) {
        let fd = Glibc.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 { return }
        var b: UInt8 = 0
        _ = Glibc.write(fd, &b, 1)
        Glibc.close(fd)
    }
}
