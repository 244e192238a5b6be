// modules: QmailCore QmailNet QmailDKIM QmailDMARC
// Fuzz target: what qmail-smtpd reads from strangers to judge a sender: the
// message's DKIM-Signature fields (verified against a key record taken
// from the input), Authentication-Results fields it removes, a DMARC
// record, and an SRS address given at RCPT.
//
// Input: a message, then optionally a line "--" and a TXT record served as
// every DNS answer (the DKIM key and the DMARC record).
//
// Checked: verification gives one known result per signature, at most
// maxSignatures + 1 results; removing forged fields only removes, twice
// is the same as once; an SRS address we made reverses to the sender.
#if canImport(Glibc)
import Glibc
#endif

let knownResults: Set<String> = ["pass", "fail", "neutral", "policy", "permerror", "temperror", "none"]
let srs = SRS(secrets: [Array("fuzz secret".utf8)])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMailAuth(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var message = input, record: [UInt8] = []
    let sep = Array("\n--\n".utf8)
    if let r = input.firstRange(of: sep) {
        message = Array(input[..<r.lowerBound]) + [10]
        record = Array(input[r.upperBound...].prefix { $0 != 10 })
    }
    let text = String(decoding: record, as: UTF8.self)

    let limits = DKIMLimits()
    let results = DKIMVerifier.verifyAll(AuthResults.withCRLF(message), limits: limits, now: 1_800_000_000) { _, _ in
        record.isEmpty ? .none : .record(text)
    }
    check(results.count <= limits.maxSignatures + 1, "more results than signatures allowed")
    for r in results { check(knownResults.contains(r.result), "unknown DKIM result \(r.result)") }

    let once = AuthResults.removeForged(message, authservID: "mx.example.net")
    check(once.count <= message.count, "removing fields added bytes")
    check(AuthResults.removeForged(once, authservID: "mx.example.net") == once, "removal not idempotent")

    if let d = DMARCRecord(record) {
        check((0...100).contains(d.percent), "pct out of range")
    }

    // The first line as an address at RCPT, and as a sender we forward.
    let line = Array(message.prefix { $0 != 10 }.prefix(512))
    _ = srs.reverse(line, now: 1_800_000_000)
    if let at = line.lastIndex(of: 64), at > 0, at < line.count - 1, !line[(at + 1)...].contains(61),
       SRS.tag(line[..<at]) == nil {
        let signed = srs.forward(line, domain: Array("srs.example.net".utf8), now: 1_800_000_000)
        if signed != line {
            switch srs.reverse(signed, now: 1_800_000_000 + 86_400) {
            case .success(let back): check(back == line, "SRS0 round trip changed the sender")
            case .failure(let why): check(false, "our own SRS0 address refused: \(why)")
            }
        }
    }
    return 0
}
