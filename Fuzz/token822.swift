// modules: QmailCore QmailQueue QmailInject
// Fuzz target: qmail-inject's RFC 822 address-list parsing and rewriting of
// header field values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzToken822(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let tokens = Token822Parser.parse(bytes) else { return 0 }
    let d = InjectDomains(defaultHost: Array("host.example.com".utf8), defaultDomain: Array("example.com".utf8),
                          plusDomain: Array("example.com".utf8), idHost: Array("host.example.com".utf8))
    guard let rw = try? AddressRewriter(d) else { return 0 }
    if let list = Token822Parser.addressList(tokens, rewrite: { rw.rewrite(&$0) }) {
        _ = Token822Parser.unparse(list)
    }
    _ = Token822Parser.unquote(tokens)
    return 0
}
