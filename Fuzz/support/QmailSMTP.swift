// Compiled into the fuzz targets that use QmailSMTP (scripts/fuzz.sh):
// a connection whose peer is the fuzz input, handed over at most `chunk`
// bytes per read (to reach the code paths of short reads), with
// everything written kept in `output`.
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
