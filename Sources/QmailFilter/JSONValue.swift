// Just enough JSON to read rspamd's answer: a recursive-descent parser over
// bytes with a depth limit, so a garbled or hostile answer is an error value
// and never a crash.
enum JSONValue {
    case null, bool(Bool), number(Double), string(String)
    case array([JSONValue]), object([(String, JSONValue)])

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members.first { $0.0 == key }?.1 }
        return nil
    }

    var number: Double? { if case .number(let d) = self { return d } else { return nil } }
    var string: String? { if case .string(let s) = self { return s } else { return nil } }
    var keys: [String] { if case .object(let m) = self { return m.map { $0.0 } } else { return [] } }

    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        var p = Parser(b: bytes)
        guard let v = p.value(depth: 0) else { return nil }
        p.space()
        return p.i == bytes.count ? v : nil
    }

    private struct Parser {
        let b: [UInt8]
        var i = 0

        mutating func space() {
            while i < b.count && (b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13) { i += 1 }
        }

        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else { return false }
            i += w.count
            return true
        }

        mutating func value(depth: Int) -> JSONValue? {
            guard depth < 32 else { return nil }
            space()
            guard i < b.count else { return nil }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, JSONValue)] = []
                space()
                if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    space()
                    guard let k = string(), skip(":"), let v = value(depth: depth + 1) else { return nil }
                    members.append((k, v))
                    space()
                    if skip(",") { continue }
                    return skip("}") ? .object(members) : nil
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [JSONValue] = []
                space()
                if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    guard let v = value(depth: depth + 1) else { return nil }
                    items.append(v)
                    space()
                    if skip(",") { continue }
                    return skip("]") ? .array(items) : nil
                }
            case UInt8(ascii: "\""):
                return string().map { .string($0) }
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default:
                let start = i
                while i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: ".")
                        || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") || (b[i] >= 48 && b[i] <= 57) { i += 1 }
                return Double(String(decoding: b[start..<i], as: UTF8.self)).map { .number($0) }
            }
        }

        mutating func skip(_ c: Character) -> Bool {
            space()
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }

        /// A string; escapes other than \" and \\ are kept as written,
        /// which is all a symbol name or an action needs.
        mutating func string() -> String? {
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            var out: [UInt8] = []
            while i < b.count {
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
                if c == UInt8(ascii: "\\") {
                    guard i < b.count else { return nil }
                    let e = b[i]
                    i += 1
                    if e != UInt8(ascii: "\"") && e != UInt8(ascii: "\\") && e != UInt8(ascii: "/") { out.append(c) }
                    out.append(e)
                    continue
                }
                out.append(c)
            }
            return nil
        }
    }
}
