// The DATA phase as qmail-smtpd's blast(): a byte state machine that
// removes dot-stuffing, turns CRLF into LF, ends only at CRLF "." CRLF, and
// refuses a bare LF anywhere (qmail's rule: the client gets 451 and the
// connection ends). Because a lone LF or CR can never take part in the end
// sequence, "\n.\r\n", "\r.\r\n" and "\n.\n" neither end nor split a message
// (no SMTP smuggling). It also counts Received/Delivered-To header lines
// (mail loops) and enforces databytes.

public struct DataReceiver {
    public enum Outcome { case more, done, strayNewline }

    private var state = 1           // 1: at line start (after CRLF)
    private var inHeader = true
    private var pos = 0             // bytes since last LF, in the header
    private var maybeReceived = true
    private var maybeDelivered = true
    private var maybeBlank = true
    public private(set) var hops = 0
    /// Bytes left before the message is over databytes; nil means no limit.
    public private(set) var bytesLeft: Int?
    public private(set) var overflowed = false
    /// Decoded message bytes waiting to be written.
    public var output: [UInt8] = []

    public init(databytes: Int) {
        bytesLeft = databytes > 0 ? databytes + 1 : nil
        output.reserveCapacity(70000)
    }

    @inline(__always) private mutating func put(_ c: UInt8) {
        if var left = bytesLeft {
            if left == 0 { return }
            left -= 1
            bytesLeft = left
            if left == 0 { overflowed = true; return }
        }
        output.append(c)
    }

    private static let received: [UInt8] = Array("received".utf8)
    private static let delivered: [UInt8] = Array("delivered".utf8)

    @inline(__always) private mutating func header(_ ch: UInt8) {
        if pos < 9 {
            let lc = (ch >= 65 && ch <= 90) ? ch + 32 : ch
            if lc != DataReceiver.delivered[pos] { maybeDelivered = false }
            if maybeDelivered && pos == 8 { hops += 1 }
            if pos < 8 {
                if lc != DataReceiver.received[pos] { maybeReceived = false }
                if maybeReceived && pos == 7 { hops += 1 }
            }
            if pos < 2 {
                if ch != (pos == 0 ? 13 : 10) { maybeBlank = false }
                if maybeBlank && pos == 1 { inHeader = false }
            }
        }
        pos += 1
        if ch == 10 { pos = 0; maybeReceived = true; maybeDelivered = true; maybeBlank = true }
    }

    /// Consumes bytes of `chunk`; returns how many and what happened.
    public mutating func feed(_ chunk: UnsafeBufferPointer<UInt8>) -> (consumed: Int, outcome: Outcome) {
        var i = 0
        let n = chunk.count
        while i < n {
            let ch = chunk[i]
            i += 1
            if inHeader { header(ch) }
            switch state {
            case 0:
                if ch == 10 { return (i, .strayNewline) }
                if ch == 13 { state = 4; continue }
            case 1:
                if ch == 10 { return (i, .strayNewline) }
                if ch == 46 { state = 2; continue }
                if ch == 13 { state = 4; continue }
                state = 0
            case 2:
                if ch == 10 { return (i, .strayNewline) }
                if ch == 13 { state = 3; continue }
                state = 0
            case 3:
                if ch == 10 { return (i, .done) }
                put(46); put(13)
                if ch == 13 { state = 4; continue }
                state = 0
            default: // 4: after CR
                if ch == 10 { state = 1; break }
                if ch != 13 { put(13); state = 0 }
            }
            put(ch)
        }
        return (i, .more)
    }
}
