// Byte-string helpers. Mail protocols are bytes, not Unicode text: these
// never decode or normalise what they are given.
#if canImport(Glibc)
import Glibc
#endif

public typealias Bytes = [UInt8]

public enum Ascii {
    public static let nul: UInt8 = 0
    public static let tab: UInt8 = 9
    public static let lf: UInt8 = 10
    public static let cr: UInt8 = 13
    public static let space: UInt8 = 32
    public static let hash: UInt8 = 35
    public static let dot: UInt8 = 46
    public static let slash: UInt8 = 47
    public static let colon: UInt8 = 58
    public static let at: UInt8 = 64
    public static let percent: UInt8 = 37
    public static let plus: UInt8 = 43
    public static let minus: UInt8 = 45
    public static let equals: UInt8 = 61

    @inlinable public static func lower(_ c: UInt8) -> UInt8 {
        (c >= 65 && c <= 90) ? c + 32 : c
    }

    @inlinable public static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
}

extension Array where Element == UInt8 {
    /// The bytes of a String, as UTF-8.
    @inlinable public init(string s: String) { self = Array(s.utf8) }

    /// Decodes as UTF-8, replacing invalid sequences; for messages and paths.
    public var string: String { String(decoding: self, as: UTF8.self) }

    public func lowercasedASCII() -> [UInt8] { map(Ascii.lower) }

    public func trimmingTrailing(_ set: (UInt8) -> Bool) -> [UInt8] {
        var end = count
        while end > 0 && set(self[end - 1]) { end -= 1 }
        return Array(self[0..<end])
    }

    public func lastIndex(ofByte b: UInt8) -> Int? { lastIndex(of: b) }

    public func split(byte: UInt8) -> [[UInt8]] {
        split(separator: byte, omittingEmptySubsequences: false).map(Array.init)
    }

    public func hasPrefix(_ p: [UInt8]) -> Bool {
        count >= p.count && self[0..<p.count].elementsEqual(p)
    }

    public func hasSuffix(_ p: [UInt8]) -> Bool {
        count >= p.count && self[(count - p.count)...].elementsEqual(p)
    }

    public func caseInsensitiveEquals(_ other: [UInt8]) -> Bool {
        count == other.count && zip(self, other).allSatisfy { Ascii.lower($0) == Ascii.lower($1) }
    }
}

/// Decimal formatting and parsing without Foundation.
public enum Decimal {
    public static func parse(_ b: some Collection<UInt8>) -> Int? {
        if b.isEmpty || b.count > 18 { return nil }
        var v = 0
        for c in b {
            guard Ascii.isDigit(c) else { return nil }
            v = v * 10 + Int(c - 48)
        }
        return v
    }

    /// Parses leading digits as qmail's scan_ulong does: stops at the first
    /// non-digit; nil when there is no digit at all.
    public static func scanPrefix(_ b: some Collection<UInt8>) -> Int? {
        var v = 0
        var any = false
        for c in b {
            guard Ascii.isDigit(c) else { break }
            if v > (Int.max - 9) / 10 { return nil }
            v = v * 10 + Int(c - 48)
            any = true
        }
        return any ? v : nil
    }
}

extension StringProtocol {
    /// The text without the characters of `set` at either end.
    public func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
