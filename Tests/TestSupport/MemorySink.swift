// A queue in memory, for unit tests and fuzz targets: what a server under
// test queued, and how it closed each message.
import QmailCore
import QmailQueue

public final class MemorySink: QueueSink {
    public var puts: [[UInt8]] = []
    public var failed = false
    public var sender: [UInt8]?
    public var recipients: [[UInt8]] = []
    public var closed = false
    /// Answer as a queue program that refuses the message.
    public var refuse = false
    public var dataStart = 0
    public var dataEnd = 0
    /// Called at close; its result becomes `dataEnd`.
    public var onClose: () -> Int = { 0 }
    public var queuePid: Int32

    public init(queuePid: Int32 = 4242) { self.queuePid = queuePid }

    public func put(_ bytes: [UInt8]) { precondition(!closed); puts.append(bytes) }
    public func put(_ raw: UnsafeRawBufferPointer) { put(Array(raw)) }
    public func fail() { failed = true }
    public func from(_ s: [UInt8]) { precondition(sender == nil && !closed); sender = s }
    public func to(_ r: [UInt8]) { precondition(sender != nil && !closed); recipients.append(r) }
    public func close() -> MailFailure? {
        precondition(!closed, "queue closed twice")
        closed = true
        dataEnd = onClose()
        if failed { return .temporary("qq read error") }
        if refuse { return .permanent("refused by the test queue") }
        return nil
    }
    public var queued: Bool { closed && !failed && !refuse }
    public var size: Int { puts.reduce(0) { $0 + $1.count } }
    /// Everything put, in one piece.
    public var message: [UInt8] { Array(puts.joined()) }
    /// The envelope as text: "F" sender, then "T" recipient for each.
    public var envelope: [String] {
        (sender.map { ["F" + $0.string] } ?? []) + recipients.map { "T" + $0.string }
    }
}
