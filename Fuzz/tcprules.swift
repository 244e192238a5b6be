// modules: QmailCore QmailNet
// Fuzz target: tcprules input (ucspi-tcp's rules file) as RulesCompiler
// reads it, the cdb data it makes, and tcpserver's key order for a lookup.
//
// Checked: every record's data decodes (RuleVerdict) and encodes back to
// the same bytes; a range line expands to at most 256 records; the cdb
// written from the records finds each key's first record, as tcpserver
// would use it; lookup keys run from the most to the least specific.
#if canImport(Glibc)
import Glibc
#endif

func encode(_ v: RuleVerdict) -> [UInt8] {
    var out: [UInt8] = v.deny ? [68, 0] : []
    for e in v.env { out += [43] + e.name + [61] + e.value + [0] }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTcprules(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let lines = bytes.reduce(1) { $0 + ($1 == 10 ? 1 : 0) }
    if let recs = try? RulesCompiler.parse(bytes) {
        check(recs.count <= 256 * lines, "\(recs.count) records from \(lines) lines")
        if !bytes.contains(0) {
            // A NUL in a value would cut the entry, in ucspi-tcp as here.
            for (_, d) in recs { check(encode(RuleVerdict(data: d)) == d, "record data does not round-trip") }
        }
        if recs.count <= 300 {
            guard let cdb = try? CdbReader(bytes: cdbBytes(recs)) else { check(false, "cdb unreadable"); return 0 }
            var seen = Set<[UInt8]>()
            for (k, d) in recs where !seen.contains(k) {
                seen.insert(k)
                check((try? cdb.find(k)) == d, "cdb does not give a key's first record")
            }
            let parts = bytes.split(separator: 10, maxSplits: 3).map(Array.init)
            let ip = parts.first ?? []
            let keys = RulesLookup.keys(ip: ip, host: parts.count > 1 ? parts[1] : nil, info: parts.count > 2 ? parts[2] : nil)
            check(keys.last == [], "the default rule is not looked up last")
            _ = try? RulesLookup.lookup(cdb, ip: ip, host: parts.count > 1 ? parts[1] : nil, info: nil)
        }
    }
    _ = RuleVerdict(data: bytes)
    return 0
}
