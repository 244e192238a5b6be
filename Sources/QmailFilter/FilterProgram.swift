// qmail-filter's plumbing: take a message the way qmail-queue does (one
// message on fd 0 and its envelope on fd 1, or a session of framed messages
// from qmail-smtpd), have Filter judge it, then either hand it to the real
// HOME/bin/qmail-queue or refuse it. A refusal's reply goes back as
// qmail-queue-custom-error does (the reason on fd 4, exit 82) or, in a
// session, as status 82 with the reason; the session then goes on.
//
// Nothing is queued before the verdict, and the status says "queued" only
// after qmail-queue said so: a failure anywhere is a refusal, never a loss.
//
// Mailboxes' own policies come from the backend control/userdirectory
// names. For "ldap" or "mysql" qmail-filter execs qmail-filter-ldap or
// qmail-filter-mysql (same arguments, descriptors untouched), which link
// libldap or libmariadb; qmail-filter itself links neither, so file-backend
// sites do not pay their load time (2-3 ms) on every exec. The variant's
// exec is paid once per SMTP session in session mode, where one connection
// to the directory then serves every message of the session.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue
import UserDirectory

public enum FilterProgram {
    /// Runs the filter; returns the exit code. `directory` is given by
    /// qmail-filter-ldap/-mysql; qmail-filter passes nil and follows
    /// control/userdirectory.
    public static func main(home: QmailHome = QmailHome.current(), session: Bool,
                            directory: ((QmailHome) -> FilterPolicyDirectory)? = nil) -> Int32 {
        let users: FilterPolicyDirectory
        if let make = directory {
            users = make(home)
        } else {
            do {
                if let variant = try DirectoryChoice.variant(of: "qmail-filter", home: home) {
                    let e = ChildProcess.exec(.init([variant] + CommandLine.arguments.dropFirst(), program: variant))
                    log("unable to run \(variant): \(e)")
                    return QueueExit.temporaryRefusal.rawValue
                }
                users = FileBackend(home: home, plainPasswordsEnabled: false)
            } catch {
                // Each message is deferred, with the reason logged.
                users = UnknownDirectory(failure: error)
            }
        }
        signal(SIGPIPE, SIG_IGN)
        Sys.exitOnAlarm(code: QueueExit.timeout.rawValue)
        let queue = home.bin("qmail-queue")
        if !session {
            alarm(QueueWriter.deathSeconds)
            var input = OneMessage()
            let out = filterOne(&input, home: home, users: users) { try QueueClient(program: queue) }
            return finishOne(out)
        }
        let frames = ByteReader(fd: 0, capacity: 65536)
        let inner = QueueSession(program: queue)
        while true {
            var input = Framed(frames: frames)
            do { guard try input.waitForMessage() else { return 0 } } catch { return QueueExit.readError.rawValue }
            alarm(QueueWriter.deathSeconds)
            let out = filterOne(&input, home: home, users: users) { try QueueSession.open(inner, program: queue) }
            let status: [UInt8]
            switch out {
            case .queued: status = QueueSession.status(0)
            case .refused(let reason): status = QueueSession.status(QueueExit.customReply.rawValue, reason: Array(reason.utf8))
            case .failed(let code): status = QueueSession.status(code)
            }
            do { try Sys.writeAll(1, status) } catch { return QueueExit.writeError.rawValue }
            if case .failed(let code) = out { return code }
        }
    }

    enum Outcome {
        case queued
        /// "D"/"Z" and the reply.
        case refused(String)
        /// A qmail-queue exit code, where the input itself was at fault.
        case failed(Int32)
    }

    /// One message's exit in qmail-queue's one-message interface.
    static func finishOne(_ out: Outcome) -> Int32 {
        switch out {
        case .queued: return 0
        case .failed(let code): return code
        case .refused(let reason):
            // The reason descriptor exists only where the caller made one
            // (our qmail-smtpd and injectors, a patched qmail); elsewhere
            // the plain permanent or temporary code says as much.
            var st = stat()
            if fstat(QueueClient.reasonFd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO,
               (try? Sys.writeAll(QueueClient.reasonFd, reason)) != nil {
                return QueueExit.customReply.rawValue
            }
            return reason.hasPrefix("D") ? QueueExit.permanentRefusal.rawValue : QueueExit.temporaryRefusal.rawValue
        }
    }

    static func log(_ s: String) {
        Sys.warn("qmail-filter: pid \(getpid()) \(s)")
    }

    static func filterOne<I: FilterInput>(_ input: inout I, home: QmailHome, users: FilterPolicyDirectory,
                                          open: () throws -> QueueSink) -> Outcome {
        // Controls first: their size limit decides how much to hold.
        let loaded = Result { () throws -> FilterSettings in
            var s = try FilterSettings.load(Control(home: home))
            s.mailboxPolicy = { try users.filterPolicy(address: $0) }
            return s
        }
        let limit = (try? loaded.get())?.policy.maxSize ?? Int.max
        let refuseOversize = (try? loaded.get())?.policy.refuseOversize ?? false
        var held: [UInt8] = []
        var size = 0
        var passing: QueueSink? = nil     // an oversized message, on its way unscanned
        var oversize = false
        var openFailure: MailFailure? = nil
        do {
            while let chunk = try input.nextChunk() {
                size += chunk.count
                if passing != nil { passing!.put(chunk); continue }
                if oversize { continue }
                held += chunk
                if held.count > limit {
                    oversize = true
                    if !refuseOversize {
                        do {
                            let q = try open()
                            q.put(Array("X-Qmail-Filter: not scanned, message over \(limit) bytes\n".utf8))
                            q.put(held)
                            passing = q
                        } catch {
                            openFailure = error as? MailFailure ?? .temporary("unable to exec qq")
                        }
                    }
                    held = []
                }
            }
        } catch {
            passing?.fail(); _ = passing?.close()
            return .failed(QueueExit.readError.rawValue)
        }
        let envelope: Envelope
        do { envelope = try Envelope.parse(input.envelope()) } catch let e as EnvelopeError {
            passing?.fail(); _ = passing?.close()
            return .failed(e.code)
        } catch {
            passing?.fail(); _ = passing?.close()
            return .failed(QueueExit.readError.rawValue)
        }
        let who = "from <\(envelope.sender.string)> to \(envelope.recipients.count) recipient(s), \(size) bytes"
        if let f = openFailure { return refusal(f) }
        if let q = passing {
            log("passed unscanned (over \(limit) bytes) " + who)
            return deliver(q, envelope)
        }
        if oversize {
            log("refused unscanned (over \(limit) bytes) " + who)
            return .refused("D552 5.3.4 message too big to be scanned")
        }
        guard case .success(let settings) = loaded else {
            log("unable to read filter controls; deferred " + who)
            return .refused("Z451 4.3.0 unable to read filter controls")
        }
        let m = FilterMessage(bytes: held, sender: envelope.sender, recipients: envelope.recipients,
                              authUser: Sys.getenv("SMTPAUTHUSER"), remoteIP: Sys.getenv("TCPREMOTEIP"))
        var note = ""
        let verdict = Filter.judge(m, settings, log: &note)
        log(note + " " + who)
        switch verdict {
        case .refuse(let reason):
            return .refused(reason)
        case .pass(let headers, let strip, let keep, let reason):
            var kept: String? = nil
            if !keep.isEmpty {
                do {
                    kept = try Quarantine(home: home).store(reason: reason, sender: envelope.sender, recipients: keep,
                                                           message: held)
                } catch {
                    log("unable to quarantine (\(error)); deferred " + who)
                    return .refused("Z451 4.3.0 unable to quarantine the message, try again later")
                }
                log("quarantined as \(kept!) for \(keep.count) recipient(s) (\(reason)) " + who)
            }
            let rest = envelope.recipients.filter { !keep.contains($0) }
            if rest.isEmpty && kept != nil { return .queued }
            let q: QueueSink
            do { q = try open() } catch {
                unkeep(kept, home)
                return refusal(error as? MailFailure ?? .temporary("unable to exec qq"))
            }
            q.put(headers)
            q.put(strip ? Filter.strippingSpamHeaders(held) : held)
            let out = deliver(q, Envelope(sender: envelope.sender, recipients: rest))
            if case .refused = out { unkeep(kept, home) }
            return out
        }
    }

    /// A quarantined copy of a message that was not queued after all goes
    /// too: the sender is told to try again, and will.
    static func unkeep(_ id: String?, _ home: QmailHome) {
        if let id { try? Quarantine(home: home).delete(id) }
    }

    /// Hands the envelope over and reports what qmail-queue made of it.
    static func deliver(_ q: QueueSink, _ e: Envelope) -> Outcome {
        q.from(e.sender)
        for r in e.recipients { q.to(r) }
        guard let f = q.close() else { return .queued }
        return refusal(f)
    }

    /// qmail-queue's own failure, passed on with the reply qmail-smtpd
    /// would have given for it.
    static func refusal(_ f: MailFailure) -> Outcome {
        log("qmail-queue failed: \(f.description)")
        return .refused((f.isTemporary ? "Z" : "D") + f.smtpReply)
    }
}

/// control/userdirectory could not be read: no mailbox's policy is known.
struct UnknownDirectory: FilterPolicyDirectory {
    let failure: Error
    func filterPolicy(address: [UInt8]) throws -> [UInt8]? { throw failure }
}

/// A message's bytes chunk by chunk, then its envelope.
protocol FilterInput {
    /// The next piece of the message; nil at its end.
    mutating func nextChunk() throws -> [UInt8]?
    /// The envelope in qmail-queue's fd-1 format.
    mutating func envelope() throws -> [UInt8]
}

/// qmail-queue's own interface: the message on fd 0 to its end, the
/// envelope on fd 1.
struct OneMessage: FilterInput {
    private var buf = [UInt8](repeating: 0, count: 65536)

    mutating func nextChunk() throws -> [UInt8]? {
        let n = try buf.withUnsafeMutableBytes { try Sys.read(0, $0.baseAddress!, $0.count) }
        return n == 0 ? nil : Array(buf[0..<n])
    }

    mutating func envelope() throws -> [UInt8] {
        let r = ByteReader(fd: 1, capacity: 8192)
        return try Envelope.read { try r.byte() }
    }
}

/// One message of a session (QueueSession's frames): "M" frames of
/// message bytes, then an "E" frame holding the envelope.
struct Framed: FilterInput {
    let frames: ByteReader
    private var pending: (tag: UInt8, length: Int)?
    private var env: [UInt8]?

    init(frames: ByteReader) { self.frames = frames }

    /// Reads the next frame header; false at a clean end between messages.
    mutating func waitForMessage() throws -> Bool {
        guard let h = try QueueSession.frameHeader(frames) else { return false }
        pending = h
        return true
    }

    mutating func nextChunk() throws -> [UInt8]? {
        if env != nil { return nil }
        let h: (tag: UInt8, length: Int)
        if let p = pending { h = p; pending = nil } else {
            guard let next = try QueueSession.frameHeader(frames) else { throw ScanError("session ended inside a message") }
            h = next
        }
        switch h.tag {
        case UInt8(ascii: "M"):
            guard h.length <= 1 << 24, let b = try frames.bytes(count: h.length) else { throw ScanError("bad frame") }
            return b
        case UInt8(ascii: "E"):
            guard h.length <= 64 << 20, let b = try frames.bytes(count: h.length) else { throw ScanError("bad frame") }
            env = b
            return nil
        default:
            throw ScanError("bad frame")
        }
    }

    mutating func envelope() throws -> [UInt8] {
        guard let e = env else { throw ScanError("no envelope") }
        return e
    }
}

struct EnvelopeError: Error { let code: Int32 }

/// qmail-queue's envelope: F sender NUL, T recipient NUL for each, NUL.
struct Envelope {
    var sender: [UInt8] = []
    var recipients: [[UInt8]] = []

    /// Reads one envelope byte by byte; `next` gives nil at end of input.
    static func read(_ next: () throws -> UInt8?) throws -> [UInt8] {
        var out: [UInt8] = []
        var fieldStart = true
        while out.count < 64 << 20 {
            guard let b = try next() else { throw EnvelopeError(code: QueueExit.readError.rawValue) }
            out.append(b)
            if fieldStart && b == 0 && out.count > 1 { return out }
            fieldStart = b == 0
        }
        throw EnvelopeError(code: QueueExit.envelopeFormat.rawValue)
    }

    static func parse(_ raw: [UInt8]) throws -> Envelope {
        var e = Envelope()
        let fields = raw.split(separator: 0, omittingEmptySubsequences: false)
        guard let first = fields.first, first.first == UInt8(ascii: "F") else { throw EnvelopeError(code: QueueExit.envelopeFormat.rawValue) }
        e.sender = Array(first.dropFirst())
        for f in fields.dropFirst() {
            if f.isEmpty { break }
            guard f.first == UInt8(ascii: "T") else { throw EnvelopeError(code: QueueExit.envelopeFormat.rawValue) }
            e.recipients.append(Array(f.dropFirst()))
        }
        return e
    }
}
