// modules: QmailCore QmailQueue QmailSend
// Fuzz target: the queue envelope. The input is what a client writes to
// qmail-queue's fd 1 ("F" sender NUL, "T" recipient NUL ..., NUL); it goes
// through QueueWriter.copyEnvelope as qmail-queue reads it, and what that
// writes to todo/N is parsed back as qmail-send does (TodoEnvelope). The raw
// input is also parsed as a damaged todo/, info/ or local/remote file.
//
// Checked: qmail-queue accepts exactly the well-formed envelopes (compared
// with an independent reading) and copies exactly what it read; each
// address it accepts is shorter than 1003 bytes with its NUL; qmail-send
// reads back the same sender and recipients; channel records point at their
// T/D letter.
#if canImport(Glibc)
import Glibc
#endif

struct EndOfInput: Error {}

/// The envelope as the qmail-queue(8) man page defines it, or nil.
func reference(_ b: [UInt8]) -> (sender: [UInt8], recipients: [[UInt8]], used: Int)? {
    var i = 0
    func address() -> [UInt8]? {
        guard let nul = b[i...].firstIndex(of: 0) else { return nil }
        let a = Array(b[i..<nul])
        if a.count + 1 >= QueueWriter.maxAddress { return nil }
        i = nul + 1
        return a
    }
    guard b.first == 70 else { return nil }
    i = 1
    guard let sender = address() else { return nil }
    var rcpts: [[UInt8]] = []
    while true {
        guard i < b.count else { return nil }
        let c = b[i]
        i += 1
        if c == 0 { return (sender, rcpts, i) }
        guard c == 84, let r = address() else { return nil }
        rcpts.append(r)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var pos = 0
    var written: [UInt8] = []
    let ok: Bool
    do {
        try QueueWriter.copyEnvelope({
            guard pos < bytes.count else { throw EndOfInput() }
            pos += 1
            return bytes[pos - 1]
        }, { written += $0 })
        ok = true
    } catch {
        ok = false
    }
    let ref = reference(bytes)
    check(ok == (ref != nil), "qmail-queue and the envelope format disagree (queue: \(ok))")
    if let ref {
        check(pos == ref.used, "qmail-queue read past the envelope's end")
        check(written == Array(bytes[0..<(pos - 1)]), "todo/ is not the envelope as read")
        let todo = Array("u1000\0p4242\0".utf8) + written
        guard let env = TodoEnvelope.parse(todo) else { check(false, "qmail-send cannot parse a todo/ qmail-queue wrote"); return 0 }
        check(env.uid == 1000 && env.pid == 4242, "uid/pid")
        check(env.sender == ref.sender && env.recipients == ref.recipients, "qmail-send reads another envelope")
        check(Records.sender(fromInfo: Records.info(sender: env.sender)) == env.sender, "info/ round trip")
        let chan = Records.channel(Records.channelFile(env.recipients))
        check(chan.map { $0.address } == env.recipients && chan.allSatisfy { !$0.done }, "channel file round trip")
    }
    // Damaged queue files: parse without crashing; records are consistent.
    _ = TodoEnvelope.parse(bytes)
    _ = Records.sender(fromInfo: bytes)
    for r in Records.channel(bytes) {
        check(bytes[r.offset] == (r.done ? 68 : 84), "channel record offset")
        check(Array(bytes[(r.offset + 1)..<(r.offset + 1 + r.address.count)]) == r.address && bytes[r.offset + 1 + r.address.count] == 0,
              "channel record address")
    }
    return 0
}
