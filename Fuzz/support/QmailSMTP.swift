// Compiled into the fuzz targets that use QmailSMTP (scripts/fuzz.sh):
// a connection whose peer is the fuzz input, handed over at most `chunk`
// bytes per read (to reach the code paths of short reads), with
// everything written kept in `output`.
import QmailCore
import QmailNet
import QmailQueue
import QmailSMTP

final class MemoryStream: ByteStream {
    let input: [UInt8]
    var offset: Int
    let chunk: Int
    var output: [UInt8] = []

    init(_ input: [UInt8], offset: Int, chunk: Int = Int.max) {
        self.input = input
        self.offset = offset
        self.chunk = chunk
    }

    var hasPending: Bool { false }

    func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int {
        let n = min(count, chunk, input.count - offset)
        if n <= 0 { return 0 }
        input.withUnsafeBytes { buf.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }

    func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws {
        output.append(contentsOf: UnsafeRawBufferPointer(start: buf, count: count))
    }
}

/// A queue in memory: what a server under test queued, and how it closed
/// each message (refuse: answer as a queue program that refuses it).
final class MemorySink: QueueSink {
    var puts: [[UInt8]] = []
    var failed = false
    var sender: [UInt8]?
    var recipients: [[UInt8]] = []
    var closed = false
    var refuse = false
    var dataStart = 0
    var dataEnd = 0
    var onClose: () -> Int = { 0 }

    func put(_ bytes: [UInt8]) { precondition(!closed); puts.append(bytes) }
    func put(_ raw: UnsafeRawBufferPointer) { put(Array(raw)) }
    func fail() { failed = true }
    func from(_ s: [UInt8]) { precondition(sender == nil && !closed); sender = s }
    func to(_ r: [UInt8]) { precondition(sender != nil && !closed); recipients.append(r) }
    func close() -> MailFailure? {
        precondition(!closed, "queue closed twice")
        closed = true
        dataEnd = onClose()
        if failed { return .temporary("qq read error") }
        if refuse { return .permanent("refused by the fuzz queue") }
        return nil
    }
    var queuePid: Int32 { 4242 }
    var queued: Bool { closed && !failed && !refuse }
    var size: Int { puts.reduce(0) { $0 + $1.count } }
}
