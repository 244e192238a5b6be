// modules: QmailCore QmailQueue QmailLocal
// Fuzz target: dot-qmail(5) files as qmail-local reads them, and the
// extension/host rules that pick a .qmail file for an address. The first
// line of the input also serves as the address extension and host.
//
// Checked: one instruction per line; no instruction carries a NUL or LF;
// writing the instructions back and parsing again gives the same ones; no
// candidate file name carries a '.' after ".qmail" (an extension can never
// name "..") and every DEFAULT value is a suffix of the extension; EXT2-4
// are suffixes of the extension, HOST2-4 prefixes of the host.
#if canImport(Glibc)
import Glibc
#endif

func unparse(_ ins: [DotQmail.Instruction]) -> [UInt8] {
    var out: [UInt8] = []
    for i in ins {
        switch i {
        case .comment: out += Array("#".utf8)
        case .program(let p): out += [124] + p
        case .forward(let a): out += [38] + a
        case .mbox(let p), .maildir(let p): out += p
        case .forwardOnly: out += Array("+list".utf8)
        case .ignored: out += Array("+other".utf8)
        case .blank: break
        }
        out.append(10)
    }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDotQmail(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let ins = DotQmail.parse(bytes)
    var lineCount = bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
    if let last = bytes.last, last != 10 { lineCount += 1 }
    check(ins.count == lineCount, "\(ins.count) instructions for \(lineCount) lines")
    for i in ins {
        switch i {
        case .program(let b), .forward(let b), .mbox(let b), .maildir(let b):
            check(!b.contains(0) && !b.contains(10), "NUL or LF in an instruction")
            // Blanks before a NUL stay, as in qmail-local's C string.
            if !bytes.contains(0) { check(b.last != 32 && b.last != 9, "trailing blank kept") }
        default: break
        }
    }
    if !bytes.contains(0) {
        check(DotQmail.parse(unparse(ins)) == ins, "parse -> unparse -> parse changed the instructions")
    }

    let first = Array(bytes.prefix { $0 != 10 }.prefix(300))
    for dash in [[], Array("-".utf8)] as [[UInt8]] {
        let cands = DotQmail.searchOrder(dash: dash, ext: first)
        check(cands.count >= 1 && cands.count <= first.count + 2, "candidate count")
        for c in cands {
            check(c.name.starts(with: Array(".qmail".utf8)), "candidate outside .qmail")
            check(!c.name.dropFirst(6).contains(46), "a '.' in a .qmail name after the prefix")
            if let d = c.defaultValue { check(first.hasSuffix(d), "DEFAULT is not a suffix of the extension") }
        }
        check(!DotQmail.ownerName(dash: dash, ext: first, suffix: "-owner").dropFirst(6).contains(46), "owner name with '.'")
    }
    for p in DotQmail.extParts(first) { check(first.hasSuffix(p), "EXT part is not a suffix") }
    for p in DotQmail.hostParts(first) { check(first.hasPrefix(p), "HOST part is not a prefix") }
    _ = DotQmail.newSender(sender: first, local: first, host: first, ownerExists: true, ownerDefaultExists: bytes.count & 1 == 0)
    return 0
}
