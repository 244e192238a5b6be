// modules: QmailCore QmailQueue QmailForward
// Fuzz target: everything newaliases, newinclude, setforward, printforward
// and printmaillist read from files an administrator (or a list owner)
// writes must give records or a refusal, never a crash or a hang.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzForward(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let q = Qualifier(me: Array("example.com".utf8), defaultHost: Array("example.com".utf8),
                      defaultDomain: Array("example.com".utf8), plusDomain: Array("example.com".utf8))
    bytes.withUnsafeBufferPointer { text in
        var lines = AliasLines(text: text)
        var builder = AliasEntryBuilder(qualifier: q)
        var toks = Tokens()
        while let (line, _) = lines.next() {
            _ = try? builder.compile(line, &toks) { _, _ in }
        }
    }
    _ = try? NewInclude.compile(bytes, q)
    _ = try? SetForward.records(bytes) { _, _ in }
    _ = try? MailingList.print(bytes)
    _ = try? MailingList.set(bytes)
    _ = try? bytes.withUnsafeBytes { try PrintForward.render($0) }
    return 0
}
