// ucspi-tcp's access rules: the tcprules text format, the cdb it compiles
// to, and the order in which tcpserver looks keys up. Both sides are byte
// for byte ucspi-tcp 0.88's, so a rules.cdb made by either tcprules is read
// by either tcpserver.
//
// A record's data is a sequence of NUL-terminated entries: "D" for deny
// (allow is the absence of "D"), "+VAR=value" to set an environment variable.
import QmailCore

public enum RulesError: Error, CustomStringConvertible {
    case badLine([UInt8])

    public var description: String {
        switch self {
        case .badLine(let l): return "unable to parse this line: \(l.string)"
        }
    }
}

/// What a matching rule says.
public struct RuleVerdict: Equatable, Sendable {
    public var deny = false
    /// Environment assignments in rule order.
    public var env: [(name: [UInt8], value: [UInt8])] = []

    public static func == (a: RuleVerdict, b: RuleVerdict) -> Bool {
        a.deny == b.deny && a.env.count == b.env.count
            && zip(a.env, b.env).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// Decodes a record's data as tcpserver does: unknown entries are skipped,
    /// a trailing entry without NUL is ignored.
    public init(data: [UInt8]) {
        var start = 0
        while let nul = data[start...].firstIndex(of: 0) {
            let entry = data[start..<nul]
            if entry.first == UInt8(ascii: "D") {
                deny = true
            } else if entry.first == UInt8(ascii: "+") {
                let body = entry.dropFirst()
                if let eq = body.firstIndex(of: Ascii.equals) {
                    env.append((Array(body[body.startIndex..<eq]), Array(body[(eq + 1)...])))
                }
            }
            start = nul + 1
        }
    }

    public init() {}
}

public enum RulesCompiler {
    /// Parses tcprules input into (key, data) records in file order.
    /// Lines: `address:allow` or `address:deny`, then `,VAR=<q>value<q>`
    /// where <q> is any quote character. '#' lines, blank lines and lines
    /// without ':' are skipped; trailing spaces, tabs and LF are ignored.
    /// As in the IPv6 versions of tcprules, the address ends at the first
    /// ':' followed by "allow" or "deny", so IPv6 addresses may hold colons.
    public static func parse(_ input: [UInt8]) throws -> [([UInt8], [UInt8])] {
        var out: [([UInt8], [UInt8])] = []
        var lines = input.split(separator: Ascii.lf, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for raw in lines {
            if raw.first == Ascii.hash || raw.isEmpty { continue }
            var line = Array(raw)
            while let c = line.last, c == Ascii.space || c == Ascii.tab || c == Ascii.lf { line.removeLast() }
            guard let colon = instructionColon(line) else { continue }
            let address = Array(line[0..<colon])
            var x = line[(colon + 1)...]
            var data: [UInt8] = []
            if x.starts(with: Array("deny".utf8)) {
                data += [UInt8(ascii: "D"), 0]
                x = x.dropFirst(4)
            } else if x.starts(with: Array("allow".utf8)) {
                x = x.dropFirst(5)
            } else {
                throw RulesError.badLine(line)
            }
            while let c = x.first {
                guard c == UInt8(ascii: ",") else { throw RulesError.badLine(line) }
                guard let eq = x.firstIndex(of: Ascii.equals) else { throw RulesError.badLine(line) }
                data.append(UInt8(ascii: "+"))
                data += x[(x.startIndex + 1)...eq]
                x = x[(eq + 1)...]
                guard let quote = x.first else { throw RulesError.badLine(line) }
                x = x.dropFirst()
                guard let close = x.firstIndex(of: quote) else { throw RulesError.badLine(line) }
                data += x[x.startIndex..<close]
                data.append(0)
                x = x[(close + 1)...]
            }
            try expand(address, line: line) { out.append(($0, data)) }
        }
        return out
    }

    static func instructionColon(_ line: [UInt8]) -> Int? {
        var i = 0
        var first: Int?
        while i < line.count {
            if line[i] == Ascii.colon {
                if first == nil { first = i }
                let rest = line[(i + 1)...]
                if rest.starts(with: Array("deny".utf8)) || rest.starts(with: Array("allow".utf8)) { return i }
            }
            i += 1
        }
        return first
    }

    /// tcprules' ranges: in an address without '=' or '@', "a.b.c.X-Y"
    /// stands for every number from X to Y (at most 255) in that place.
    static func expand(_ address: [UInt8], line: [UInt8], _ add: ([UInt8]) -> Void) throws {
        guard !address.contains(Ascii.equals), !address.contains(Ascii.at),
              let dash = address.firstIndex(of: Ascii.minus) else {
            add(address)
            return
        }
        let left = address[0..<dash].lastIndex(of: Ascii.dot).map { $0 + 1 } ?? 0
        let right = address[(dash + 1)...].firstIndex(of: Ascii.dot) ?? address.count
        func num(_ s: ArraySlice<UInt8>) throws -> Int {
            // scan_ulong must consume the whole field; an empty field is 0.
            var v = 0
            for c in s {
                guard Ascii.isDigit(c) else { throw RulesError.badLine(line) }
                v = min(v * 10 + Int(c - 48), Int(UInt32.max))
            }
            return v
        }
        let bot = try num(address[left..<dash])
        let top = min(try num(address[(dash + 1)..<right]), 255)
        if bot > top { return }
        for n in bot...top {
            add(Array(address[0..<left]) + Array(String(n).utf8) + Array(address[right...]))
        }
    }

    /// tcprules: compiles `input` into `cdbPath` through `tmpPath`.
    public static func compile(_ input: [UInt8], cdbPath: String, tmpPath: String) throws {
        let records = try parse(input)
        try CdbWriter.create(path: cdbPath, tmpPath: tmpPath) { add in
            for (k, d) in records { try add(k, d) }
        }
    }
}

public enum RulesLookup {
    /// The keys tcpserver tries, in order; the first one present wins.
    /// ucspi-tcp 0.88: info@ip, info@=host, ip, =host, ip prefixes ending in
    /// '.', =.suffixes of host, "=" (when a host name is known), "".
    /// IPv6 addresses are tried compact and fully expanded, then by prefixes
    /// of the expanded form ending in ':'.
    public static func keys(ip: [UInt8], host: [UInt8]?, info: [UInt8]?) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        let isV6 = ip.contains(Ascii.colon)
        let expanded = isV6 ? IPAddress(ip.string).map { Array($0.unmapped.expandedV6.utf8) } : nil
        if let info {
            keys.append(info + [Ascii.at] + ip)
            if let expanded, expanded != ip { keys.append(info + [Ascii.at] + expanded) }
            if let host { keys.append(info + Array("@=".utf8) + host) }
        }
        keys.append(ip)
        if let expanded, expanded != ip { keys.append(expanded) }
        if let host { keys.append([Ascii.equals] + host) }
        let sep = isV6 ? Ascii.colon : Ascii.dot
        let base = expanded ?? ip
        var n = base.count
        while n > 0 {
            if base[n - 1] == sep { keys.append(Array(base[0..<n])) }
            n -= 1
        }
        if let host {
            for i in host.indices where host[i] == Ascii.dot {
                keys.append([Ascii.equals] + host[i...])
            }
            keys.append([Ascii.equals])
        }
        keys.append([])
        return keys
    }

    /// The verdict for a connection, or nil when no rule matches (allow).
    public static func lookup(_ cdb: CdbReader, ip: [UInt8], host: [UInt8]?, info: [UInt8]?) throws -> RuleVerdict? {
        for key in keys(ip: ip, host: host, info: info) {
            if let data = try cdb.find(key) { return RuleVerdict(data: data) }
        }
        return nil
    }
}
