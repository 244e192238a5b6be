// The Sender Rewriting Scheme in the format of libsrs2 and postsrsd, so
// that their addresses and ours verify with either:
//   SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//   SRS1=HHHH=first-domain==HHHH=TT=orig-domain=orig-local@srs-domain
// HHHH: the first 4 base64 characters of HMAC-SHA1 over the lowercased
// fields (SRS0: timestamp, domain, local; SRS1: first domain, the first
// forwarder's part after "SRS0"); TT: the day number modulo 1024 in two
// base32 characters. Checks are case-insensitive (a relay may fold case);
// an address older than maxAge days is expired. The first secret signs,
// every secret verifies (rotation: add the new one first, drop the old
// one after maxAge days).

public struct SRS: Sendable {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case notSRS, malformed, badHash, expired
        public var description: String {
            switch self {
            case .notSRS: return "not an SRS address"
            case .malformed: return "malformed SRS address"
            case .badHash: return "SRS hash does not verify"
            case .expired: return "SRS address has expired"
            }
        }
    }

    public let secrets: [[UInt8]]
    public var maxAge = 21
    public var hashLength = 4

    static let day = 86400
    static let timeSlots = 1024  // two base32 characters
    static let base32 = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
    static let separators: [UInt8] = [Ascii.equals, Ascii.minus, Ascii.plus]

    /// `secrets` must not be empty: the first signs.
    public init(secrets: [[UInt8]]) {
        precondition(!secrets.isEmpty, "SRS needs a secret")
        self.secrets = secrets
    }

    /// The tag of an SRS local part ("SRS0", "SRS1", any case, then one of
    /// = - +): 0 or 1, else nil.
    public static func tag(_ local: ArraySlice<UInt8>) -> Int? {
        guard local.count > 5 else { return nil }
        let s = local.startIndex
        guard Ascii.lower(local[s]) == 0x73, Ascii.lower(local[s + 1]) == 0x72, Ascii.lower(local[s + 2]) == 0x73,
              separators.contains(local[s + 4]) else { return nil }
        switch local[s + 3] {
        case 0x30: return 0
        case 0x31: return 1
        default: return nil
        }
    }

    /// Whether `address` has an SRS local part.
    public static func isSRS(_ address: [UInt8]) -> Bool {
        let at = address.lastIndex(of: Ascii.at) ?? address.endIndex
        return tag(address[..<at]) != nil
    }

    /// The sender rewritten to `domain`. A sender without '@' or already at
    /// `domain` is returned unchanged (libsrs2 does the same); an SRS0 or
    /// SRS1 sender of another forwarder becomes SRS1, keeping the first
    /// forwarder's part so that bounces pass back through it.
    public func forward(_ sender: [UInt8], domain: [UInt8], now: Int) -> [UInt8] {
        guard let at = sender.lastIndex(of: Ascii.at) else { return sender }
        let local = Array(sender[..<at])
        let host = Array(sender[(at + 1)...])
        if host.lowercasedASCII() == domain.lowercasedASCII() { return sender }
        let suffix = [Ascii.at] + domain
        switch SRS.tag(local[...]) {
        case 1:
            let f = SRS.fields(local.dropFirst(5), count: 3)
            if f.count == 3, !f[0].isEmpty, !f[1].isEmpty, !f[2].isEmpty {
                let first = Array(f[1]), opaque = Array(f[2])
                return Array("SRS1=".utf8) + hash([first, opaque], secret: secrets[0]) + [Ascii.equals] + first
                    + [Ascii.equals] + opaque + suffix
            }
        case 0:
            let opaque = Array(local.dropFirst(4))
            return Array("SRS1=".utf8) + hash([host, opaque], secret: secrets[0]) + [Ascii.equals] + host
                + [Ascii.equals] + opaque + suffix
        default: break
        }
        let stamp = SRS.timestamp(now)
        return Array("SRS0=".utf8) + hash([stamp, host, local], secret: secrets[0]) + [Ascii.equals] + stamp
            + [Ascii.equals] + host + [Ascii.equals] + local + suffix
    }

    /// The address an SRS address stands for: SRS0 gives the original
    /// sender, SRS1 the first forwarder's SRS0 address. The domain after
    /// '@' is not looked at (the caller knows it is ours).
    public func reverse(_ address: [UInt8], now: Int) -> Result<[UInt8], Refusal> {
        let at = address.lastIndex(of: Ascii.at) ?? address.endIndex
        let local = address[..<at]
        switch SRS.tag(local) {
        case 1:
            let f = SRS.fields(local.dropFirst(5), count: 3)
            guard f.count == 3, !f[0].isEmpty, !f[1].isEmpty, !f[2].isEmpty else { return .failure(.malformed) }
            let first = Array(f[1]), opaque = Array(f[2])
            guard verify(f[0], [first, opaque]) else { return .failure(.badHash) }
            return .success(Array("SRS0".utf8) + opaque + [Ascii.at] + first)
        case 0:
            let f = SRS.fields(local.dropFirst(5), count: 4)
            guard f.count == 4, !f[0].isEmpty, !f[1].isEmpty, !f[2].isEmpty, !f[3].isEmpty else { return .failure(.malformed) }
            let stamp = Array(f[1]), host = Array(f[2]), user = Array(f[3])
            guard let then = SRS.day(stamp) else { return .failure(.malformed) }
            guard SRS.fresh(then, now: now, maxAge: maxAge) else { return .failure(.expired) }
            guard verify(f[0], [stamp, host, user]) else { return .failure(.badHash) }
            return .success(user + [Ascii.at] + host)
        default:
            return .failure(.notSRS)
        }
    }

    /// Splits at '=' into at most `count` fields; the last keeps the rest.
    static func fields(_ s: ArraySlice<UInt8>, count: Int) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var rest = s
        while out.count < count - 1, let e = rest.firstIndex(of: Ascii.equals) {
            out.append(rest[..<e])
            rest = rest[(e + 1)...]
        }
        out.append(rest)
        return out
    }

    func hash(_ parts: [[UInt8]], secret: [UInt8]) -> [UInt8] {
        let mac = HMACSHA1.mac(key: secret, message: parts.flatMap { $0 }.lowercasedASCII())
        return Array(Base64.encode(mac).prefix(hashLength))
    }

    /// libsrs2's rule: at least hashLength characters, the first hashLength
    /// compared without case against each secret's hash.
    func verify(_ given: ArraySlice<UInt8>, _ parts: [[UInt8]]) -> Bool {
        guard given.count >= hashLength else { return false }
        let g = Array(given.prefix(hashLength)).lowercasedASCII()
        return secrets.contains { hash(parts, secret: $0).lowercasedASCII() == g }
    }

    public static func timestamp(_ now: Int) -> [UInt8] {
        let d = (now / day) % timeSlots
        return [base32[(d >> 5) & 31], base32[d & 31]]
    }

    static func day(_ stamp: [UInt8]) -> Int? {
        guard stamp.count == 2 else { return nil }
        var v = 0
        for c in stamp {
            guard let i = base32.firstIndex(of: c >= 0x61 && c <= 0x7a ? c - 32 : c) else { return nil }
            v = v << 5 | i
        }
        return v
    }

    /// The stamp's day, taken as the latest day with that number not after
    /// today, is at most maxAge days old.
    static func fresh(_ then: Int, now: Int, maxAge: Int) -> Bool {
        var today = (now / day) % timeSlots
        if today < then { today += timeSlots }
        return today - then <= maxAge
    }
}
