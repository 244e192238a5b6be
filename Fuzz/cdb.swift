// modules: QmailCore
// Fuzz target: cdb files from outside (users/cdb, aliases.cdb, tcprules
// cdbs) must never crash the reader, whatever their bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCdb(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let r = try? CdbReader(bytes: bytes) else { return 0 }
    _ = try? r.find(Array("key".utf8))
    _ = try? r.findAll(bytes.prefix(8).map { $0 })
    _ = try? r.records()
    return 0
}
