// modules: QmailCore QmailQueue QmailInject
// Fuzz target: qmail-inject's header processing (Injector): a message
// header field by field, address lists rewritten, Bcc and friends dropped,
// recipients taken from the header, the fields qmail-inject adds.
// The input is the message as qmail-inject reads it on fd 0 (through
// ByteReader, from a file).
//
// Checked: when the header is accepted, the envelope holds no NUL or LF
// and at least one recipient; the header written holds no Bcc, Resent-Bcc,
// Return-Path or Content-Length field; every line of it ends in LF and is
// a field or a continuation; its size stays in proportion to the input.
#if canImport(Glibc)
import Glibc
#endif

let domains = InjectDomains(defaultHost: Array("host".utf8), defaultDomain: Array("example.com".utf8),
                            plusDomain: Array("example.net".utf8), idHost: Array("id.example.com".utf8))
let dropped = ["bcc:", "resent-bcc:", "return-path:", "content-length:"].map { Array($0.utf8) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInject(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var options = InjectOptions()
    options.queue = true
    guard let inj = try? Injector(settings: InjectSettings(mailUser: Array("alice".utf8)), domains: domains,
                                  options: options, startTime: 0, pid: 42, headerLimit: 1 << 16) else { return 0 }
    guard (try? inj.readHeader(ByteReader(fd: scratchHolding(bytes)))) != nil, let header = try? inj.finishHeader() else { return 0 }
    let env = [inj.sender ?? []] + inj.recipients
    check(!inj.recipients.isEmpty, "accepted without recipients")
    for a in env { check(!a.contains(0) && !a.contains(10), "NUL or LF in an envelope address") }
    check(header.isEmpty || header.last == 10, "header not ended by LF")
    check(header.count <= 40 * bytes.count + 4096, "header out of proportion")
    for line in header.split(separator: 10) {
        if line.first == 32 || line.first == 9 { continue }
        check(line.contains(58), "header line neither field nor continuation")
        let low = line.prefix(16).map(Ascii.lower)
        for d in dropped { check(!low.starts(with: d), "a field qmail-inject drops was written") }
    }
    return 0
}
