// The admin commands' option parsing.
/// getopt-style parsing: single-letter flags, flags with a value
/// ("-q 100M" or "-q100M"), "--" ends the options.
public struct Options {
    public var flags: Set<Character> = []
    public var values: [Character: String] = [:]
    public var operands: [String] = []

    public init(_ args: [String], flags allowed: String, values withValue: String, usage: String) throws {
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--" { operands += args[(i + 1)...]; break }
            if a.hasPrefix("-") && a.count > 1 {
                var chars = Array(a.dropFirst())
                while let c = chars.first {
                    chars.removeFirst()
                    if withValue.contains(c) {
                        if !chars.isEmpty { values[c] = String(chars); chars = [] } else {
                            i += 1
                            guard i < args.count else { throw AdminError.usage(usage) }
                            values[c] = args[i]
                        }
                    } else if allowed.contains(c) {
                        flags.insert(c)
                    } else {
                        throw AdminError.usage(usage)
                    }
                }
            } else {
                operands.append(a)
            }
            i += 1
        }
    }
}
