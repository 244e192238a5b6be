// modules: QmailCore QmailNet
// Fuzz target: DNS replies as qmail-remote, qmail-smtpd's helpers and
// rblsmtpd read them (DNSResolver.parse: compressed names, A/AAAA/MX/PTR/
// TXT/CNAME records), asked for example.com in each type; the first line
// of the input is also encoded as a query name.
//
// Checked: parsing ends (pointer loops are cut) and gives only records of
// the type asked, owned by the name or a CNAME of it, with bounded names;
// an encodable name reads back as itself.
#if canImport(Glibc)
import Glibc
#endif

let types: [DNSType] = [.a, .aaaa, .mx, .ptr, .txt, .cname]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNS(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let m = Array(UnsafeBufferPointer(start: data, count: size))
    let id: UInt16 = m.count >= 2 ? UInt16(m[0]) << 8 | UInt16(m[1]) : 0
    let name = Array("Example.COM.".utf8)
    for t in types {
        guard let parsed = try? DNSResolver.parse(m, id: id, name: name, type: t.rawValue) else { continue }
        let (recs, truncated) = parsed
        if truncated { check(recs.isEmpty, "records from a truncated reply") }
        for r in recs {
            check(r.type == t.rawValue, "record of another type")
            check(!r.owner.contains { $0 >= 65 && $0 <= 90 }, "owner not lowercased")
            check(r.owner.count <= 1100 && (r.name?.count ?? 0) <= 1100, "name too long")
            if t == .a || t == .aaaa { check(r.ip == nil || r.ip!.bytes.count == (t == .a ? 4 : 16), "address size") }
            if t == .mx { check(r.name != nil && r.preference >= 0 && r.preference <= 65535, "MX without name") }
        }
    }
    let first = Array(m.prefix { $0 != 10 }.prefix(300))
    if let enc = try? DNSResolver.encodeName(first) {
        check(enc.count <= 255, "encoded name too long")
        guard let read = try? DNSResolver.readName(enc, 0) else { check(false, "encoded name unreadable"); return 0 }
        let (back, end) = read
        check(end == enc.count, "name end")
        var want = first
        if want.last == 46 { want.removeLast() }
        check(back == want, "name does not read back as itself")
        _ = try? DNSResolver.query(id: id, name: first, type: DNSType.mx.rawValue)
    }
    return 0
}
