// clamd's INSTREAM command: "zINSTREAM\0", the message in chunks each led
// by its length (4 bytes, big-endian), a zero length to end, then one
// NUL-terminated answer: "stream: OK", "stream: NAME FOUND" or "... ERROR".
import QmailCore

public struct Clamd {
    public let address: ScannerAddress
    /// clamd's default StreamMaxLength is 25 MB; chunks stay well below its buffer.
    static let chunk = 65536

    public init(address: ScannerAddress) { self.address = address }

    /// The virus found in `message`, nil when clean. Throws ScanError when
    /// clamd gives no verdict (down, too slow, an error or a garbled answer).
    public func scan(_ message: [UInt8], deadline: Int) throws -> String? {
        let s = try ScannerSocket(address, deadline: deadline)
        var request = Array("zINSTREAM\0".utf8)
        var at = 0
        while at < message.count {
            let n = min(Clamd.chunk, message.count - at)
            request += Clamd.length(n)
            request += message[at..<(at + n)]
            at += n
            if request.count >= 4 * Clamd.chunk { try s.send(request); request.removeAll(keepingCapacity: true) }
        }
        request += Clamd.length(0)
        try s.send(request)
        let answer = try s.receive(limit: 4096) { $0.contains(0) }
        return try Clamd.verdict(answer)
    }

    static func length(_ n: Int) -> [UInt8] {
        [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16),
         UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
    }

    /// Reads clamd's answer; only the two verdicts count, anything else
    /// (including a size-limit ERROR) is no verdict.
    static func verdict(_ raw: [UInt8]) throws -> String? {
        guard let end = raw.firstIndex(of: 0) else { throw ScanError("clamd: incomplete answer") }
        let text = String(decoding: raw[..<end], as: UTF8.self)
        guard text.hasPrefix("stream: ") else { throw ScanError("clamd: unexpected answer \(text.prefix(80))") }
        let rest = text.dropFirst(8)
        if rest == "OK" { return nil }
        if rest.hasSuffix(" FOUND") {
            let name = rest.dropLast(6).filter { $0 != " " && $0.isASCII && !$0.isNewline }
            if !name.isEmpty { return String(name.prefix(200)) }
        }
        throw ScanError("clamd: \(rest.prefix(120))")
    }
}
