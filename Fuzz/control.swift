// modules: QmailCore
// Fuzz target: control-file parsing (lists, ids, virtualdomains-style maps,
// host matching) over arbitrary bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let lines = Control.parseList(bytes)
    _ = QmailIds.parse(bytes)
    let map = DomainMap<[UInt8]>(colonLines: lines)
    let set = DomainMap<Void>(lines: lines)
    for l in lines.prefix(8) {
        _ = map.matchAddress(l)
        _ = set.containsHost(l)
        _ = Address.quote(l)
        _ = Address.split(l)
    }
    _ = Decimal.scanPrefix(bytes)
    return 0
}
