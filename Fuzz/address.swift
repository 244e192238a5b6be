// modules: QmailCore QmailQueue QmailNet QmailSMTP
// Fuzz target: envelope addresses: qmail's quoting (Address.quote, used by
// qmail-remote and in headers) against qmail-smtpd's MAIL/RCPT argument
// parser (AddressParse), and the split at the last '@'.
//
// Input: an envelope address (quote -> parse round trip) that is also used
// as a raw MAIL FROM: argument.
//
// Checked: local@domain rebuilds the address; an unquoted local part has
// only atom characters and no leading, trailing or double dot; what
// qmail-remote sends for an address, qmail-smtpd reads back as the same
// address (when its domain holds no '>', '"' or '\'); parsed addresses are
// bounded and parameters are upper-case keys.
#if canImport(Glibc)
import Glibc
#endif

let specials = Array("\"(),:;<>@[\\]".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let a = Array(UnsafeBufferPointer(start: data, count: size))
    let (local, domain) = Address.split(a)
    check((domain == nil && local == a) || (domain != nil && local + [64] + domain! == a), "split does not rebuild")
    if let d = domain { check(!d.contains(64), "domain with '@'") }
    if !Address.needsQuoting(local) {
        check(!local.isEmpty && local.allSatisfy { $0 > 32 && $0 < 127 && !specials.contains($0) }, "unquoted local part with a special")
        check(local.first != 46 && local.last != 46 && !zip(local, local.dropFirst()).contains { $0 == 46 && $1 == 46 }, "unquoted dots")
    }
    let q = Address.quote(a)
    let domainOK = !(domain ?? []).contains { $0 == 62 || $0 == 34 || $0 == 92 }
    if a.count <= AddressParse.maxLength && domainOK {
        let arg = Array("FROM:<".utf8) + q + Array("> SIZE=1000".utf8)
        guard let p = AddressParse.parse(arg) else { check(false, "smtpd refused a quoted address"); return 0 }
        check(p.address == a, "quote -> smtpd parse changed the address")
        check(p.parameter("SIZE") == Array("1000".utf8), "SIZE parameter lost")
    }
    if let p = AddressParse.parse(a) {
        check(p.address.count <= AddressParse.maxLength, "parsed address too long")
        for (k, _) in p.parameters { check(!k.utf8.contains { $0 >= 97 && $0 <= 122 }, "lower-case parameter key") }
        _ = AddressParse.applyLocalIPHost(p.address, localIPHost: Array("example.com".utf8), ipme: [IPAddress("127.0.0.1")!])
    }
    return 0
}
