// A connection whose peer is a byte buffer, for unit tests and fuzz targets
// (scripts/fuzz.sh compiles this module too): the peer's bytes are handed
// over at most `chunk` per read (to reach the code paths of short reads),
// and everything written is kept in `output`.
import QmailNet

public final class MemoryStream: ByteStream {
    public let input: [UInt8]
    public var offset: Int
    public let chunk: Int
    public var output: [UInt8] = []

    public init(_ input: [UInt8], offset: Int = 0, chunk: Int = Int.max) {
        self.input = input
        self.offset = offset
        self.chunk = chunk
    }

    public convenience init(_ text: String) { self.init(Array(text.utf8)) }

    public var hasPending: Bool { false }

    public func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int {
        let n = min(count, chunk, input.count - offset)
        if n <= 0 { return 0 }
        input.withUnsafeBytes { buf.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }

    public func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws {
        output.append(contentsOf: UnsafeRawBufferPointer(start: buf, count: count))
    }
}
