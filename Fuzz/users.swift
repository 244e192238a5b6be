// modules: QmailCore QmailQueue QmailLocal
// Fuzz target: users/assign as qmail-newu reads it (qmail-users(5)), the
// cdb records it makes, and qmail-lspawn's lookups in them.
//
// Checked: every record has six fields; writing the records back as an
// assign file and reading it again gives the same records; the cdb written
// from them finds every exact (=) address, with its first record.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUsers(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let recs = try? UsersAssign.records(bytes) else { return 0 }
    check(recs.last?.key == [], "no wildcard record at the end")
    var text: [UInt8] = []
    var exact: [([UInt8], [UInt8])] = []   // local, its first record's extension
    for r in recs.dropLast() {
        check(r.key.first == 33, "key without '!'")
        let fields = r.data.split(byte: 0)
        check(fields.count == 6, "record with \(fields.count) fields")
        check(!r.data.contains(58) && !r.data.contains(10), "':' or LF in a record")
        if r.key.last == 0 {
            let local = Array(r.key.dropFirst().dropLast())
            if !exact.contains(where: { $0.0 == local }) { exact.append((local, fields[5])) }
            text += [61] + local
        } else {
            text += [43] + r.key.dropFirst()
        }
        text.append(58)
        for f in fields { text += f; text.append(58) }
        text.append(10)
    }
    text += Array(".\n".utf8)
    guard let again = try? UsersAssign.records(text) else { check(false, "written-back assign file refused"); return 0 }
    // The wildcard characters keep the case they were written in (as in
    // qmail-newu); written back from the lowercased keys they come out lower.
    check(again.count == recs.count && zip(again.dropLast(), recs.dropLast()).allSatisfy { $0.key == $1.key && $0.data == $1.data }
          && Set(again.last!.data.map(Ascii.lower)) == Set(recs.last!.data.map(Ascii.lower)),
          "assign -> records -> assign -> records changed")
    if recs.count <= 200 {
        guard let cdb = try? CdbReader(bytes: cdbBytes(recs.map { ($0.key, $0.data) })) else { check(false, "cdb unreadable"); return 0 }
        for (local, ext) in exact.prefix(8) {
            guard let a = try? UsersAssign.lookup(cdb, local: local) else { check(false, "lookup failed for an exact address"); continue }
            check(a.ext == ext, "exact address found with another record's extension")
        }
        _ = try? UsersAssign.lookup(cdb, local: Array(bytes.prefix(40)))
    }
    return 0
}
