// Compiled into the fuzz targets that use QmailCore (scripts/fuzz.sh).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// The bytes of a cdb holding `records`, as CdbWriter writes it (through the scratch file).
func cdbBytes(_ records: [([UInt8], [UInt8])]) -> [UInt8] {
    let fd = scratchHolding([UInt8]())
    let w = try! CdbWriter(fd: fd)
    for r in records { try! w.add(r.0, r.1) }
    try! w.finish()
    let n = Int(lseek(fd, 0, SEEK_END))
    var out = [UInt8](repeating: 0, count: n)
    _ = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress, n, 0) }
    return out
}
