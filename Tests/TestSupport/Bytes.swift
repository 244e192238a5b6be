// Byte strings in tests: written as text, shown as text.

/// The UTF-8 bytes of `s`.
public func b(_ s: String) -> [UInt8] { Array(s.utf8) }

extension Collection where Element == UInt8 {
    /// The bytes as a quoted string, printable ASCII as itself and the rest
    /// as \r, \n, \t, \0 or \xHH, so that a failed comparison reads as text.
    public var escaped: String {
        var s = "\""
        for c in self {
            switch c {
            case 0x0d: s += "\\r"
            case 0x0a: s += "\\n"
            case 0x09: s += "\\t"
            case 0x00: s += "\\0"
            case 0x22: s += "\\\""
            case 0x5c: s += "\\\\"
            case 0x20...0x7e: s.append(Character(Unicode.Scalar(c)))
            default:
                let h = String(c, radix: 16, uppercase: true)
                s += "\\x" + (h.count < 2 ? "0" + h : h)
            }
        }
        return s + "\""
    }
}
