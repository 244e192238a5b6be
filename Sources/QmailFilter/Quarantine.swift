// The quarantine: messages qmail-filter kept instead of refusing (a
// recipient's policy said quarantine=yes, or the message was accepted for
// other recipients of it). One file per message in HOME/quarantine, a
// directory of qmail-filter's user (qmaild) and mode 700, so only that
// user (and root) can read or change it. A file is written beside its
// final name, fsync'd and renamed, so a listing never shows half a message.
//
// File: the reason, LF; the envelope in qmail-queue's fd-1 form (F sender
// NUL, T recipient NUL..., NUL); then the message as received.
//
// qmail-quarantine list | show ID | release ID | delete ID works on it;
// release hands the message to HOME/bin/qmail-queue (never QMAILQUEUE:
// it must not meet the filter again) with its original envelope.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public struct QuarantinedMessage {
    public var id: String
    public var reason: String
    public var sender: [UInt8]
    public var recipients: [[UInt8]]
    public var message: [UInt8]
    public var time: Int
}

public struct Quarantine {
    public let home: QmailHome
    public var directory: String { home.path + "/quarantine" }

    public init(home: QmailHome) { self.home = home }

    /// Keeps one message; returns its id. Throws when it could not be
    /// stored safely (the caller defers the message).
    public func store(reason: String, sender: [UInt8], recipients: [[UInt8]], message: [UInt8]) throws -> String {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SysError("mkdir", path: directory) }
        var body = Array(reason.utf8.map { $0 == Ascii.lf ? Ascii.space : $0 }) + [Ascii.lf]
        body += [UInt8(ascii: "F")] + sender + [0]
        for r in recipients { body += [UInt8(ascii: "T")] + r + [0] }
        body += [0]
        body += message
        var tv = timeval()
        gettimeofday(&tv, nil)
        let id = "\(tv.tv_sec).\(tv.tv_usec).\(getpid())"
        try FileIO.writeAtomic(directory + "/" + id, body, mode: 0o600)
        return id
    }

    /// An id as we make them: digits and dots, nothing a path could use.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.count < 64 && id.first != "." && id.allSatisfy { $0 == "." || ("0"..."9").contains($0) }
    }

    public func ids() throws -> [String] {
        guard Sys.isDirectory(directory) else { return [] }
        return try Sys.listDirectory(directory).filter(Quarantine.isValidID).sorted {
            $0.split(separator: ".").compactMap { Int($0) }.lexicographicallyPrecedes($1.split(separator: ".").compactMap { Int($0) })
        }
    }

    /// nil when there is no such message.
    public func load(_ id: String) throws -> QuarantinedMessage? {
        guard Quarantine.isValidID(id), let raw = try FileIO.read(directory + "/" + id, limit: 1 << 30) else { return nil }
        guard let lf = raw.firstIndex(of: Ascii.lf) else { throw MailFailure.temporary("\(id): damaged quarantine file") }
        var at = lf + 1
        let env = try Envelope.read { () -> UInt8? in
            guard at < raw.count else { return nil }
            defer { at += 1 }
            return raw[at]
        }
        let e = try Envelope.parse(env)
        return QuarantinedMessage(id: id, reason: String(decoding: raw[..<lf], as: UTF8.self), sender: e.sender,
                                  recipients: e.recipients, message: Array(raw[at...]),
                                  time: Int(id.split(separator: ".").first ?? "") ?? 0)
    }

    /// Queues the message again to its envelope through qmail-queue, then
    /// removes it; nil when done, else why not.
    public func release(_ m: QuarantinedMessage) -> MailFailure? {
        let q: QueueClient
        do { q = try QueueClient(program: home.bin("qmail-queue")) } catch {
            return error as? MailFailure ?? .temporary("unable to run qmail-queue")
        }
        q.put(m.message)
        q.from(m.sender)
        for r in m.recipients { q.to(r) }
        if let f = q.close() { return f }
        do { try delete(m.id) } catch { return .temporary("queued, but unable to remove \(m.id): \(error)") }
        return nil
    }

    public func delete(_ id: String) throws {
        guard Quarantine.isValidID(id) else { throw MailFailure.permanent("bad id \(id)") }
        try Sys.unlink(directory + "/" + id)
        try Sys.fsyncDirectory(directory)
    }
}
