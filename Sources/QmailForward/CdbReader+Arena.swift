// fastforward's lookup: QmailCore's CdbReader finds the record by pread,
// and its data is read straight into the run's arena (no Swift array).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension CdbReader {
    /// The data of the first record for `key`, appended to `out`; nil when
    /// there is none. `key` must not point into `out`.
    func find(_ key: UnsafeBufferPointer<UInt8>, into out: inout ByteArena) throws -> Span? {
        guard let (pos, len) = try locate(UnsafeRawBufferPointer(key)) else { return nil }
        try out.reserve(len)
        if len > 0 { try read(into: out.tail, count: len, at: pos) }
        return out.commit(len)
    }
}
