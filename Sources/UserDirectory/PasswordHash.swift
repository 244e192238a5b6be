// Password hashes in crypt(3) form, made and checked with libxcrypt.
// Verification recomputes the hash with the stored setting and compares the
// results in constant time; the 32 KiB crypt_data lives on the heap and is
// wiped afterwards.
#if canImport(Glibc)
import Glibc
#endif
import CCrypt
import QmailCore

public enum PasswordHash {
    /// The schemes we make and accept, by crypt prefix.
    public enum Scheme: String, CaseIterable, Sendable {
        case yescrypt = "$y$"
        case sha512 = "$6$"
        case sha256 = "$5$"
        case bcrypt = "$2b$"
        case md5 = "$1$"

        public init?(name: String) {
            switch name.lowercased() {
            case "yescrypt", "y": self = .yescrypt
            case "sha512", "sha512-crypt", "6": self = .sha512
            case "sha256", "sha256-crypt", "5": self = .sha256
            case "bcrypt", "2b": self = .bcrypt
            case "md5", "md5-crypt", "1": self = .md5
            default: return nil
            }
        }
    }

    /// The default for new passwords.
    public static let defaultScheme = Scheme.yescrypt

    /// A yescrypt hash of a password nobody knows, with the default cost:
    /// unknown users are checked against it so that a failed login takes the
    /// same time whether or not the user exists.
    public static let dummy: [UInt8] = Array("$y$j9T$o7A38XUghO296eOvbR.fB.$kBjfa8.lESewd7539mGa16q6GG6DKdgZ7Bl3WCixGB6".utf8)

    /// The scheme of a stored hash, or nil for anything we do not accept
    /// (locked "*"/"!" entries, DES, empty).
    public static func scheme(of hash: [UInt8]) -> Scheme? {
        if hash.hasPrefix(Array("$2a$".utf8)) || hash.hasPrefix(Array("$2y$".utf8)) { return .bcrypt }
        return Scheme.allCases.first { hash.hasPrefix(Array($0.rawValue.utf8)) }
    }

    /// A new hash of `password`; the salt comes from the system's random
    /// source through crypt_gensalt_rn (a hand-made yescrypt salt fails).
    public static func make(_ password: [UInt8], scheme: Scheme = defaultScheme) throws -> [UInt8] {
        guard !password.contains(0) else { throw HashError.badPassword }
        var salt = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn(scheme.rawValue, 0, nil, 0, &salt, Int32(salt.count)) != nil,
              salt[0] != 0x2a /* '*' */ else {
            throw HashError.noSalt(scheme.rawValue)
        }
        guard let out = compute(password, setting: salt.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }) else {
            throw HashError.failed(scheme.rawValue)
        }
        return out
    }

    /// True when `password` matches `hash`. Hashes of schemes we do not
    /// accept never match; the work is still done against the dummy hash so
    /// the caller's timing does not depend on what was stored.
    public static func verify(_ password: [UInt8], hash: [UInt8]) -> Bool {
        guard scheme(of: hash) != nil else {
            _ = compute(password, setting: dummy)
            return false
        }
        guard let out = compute(password, setting: hash) else { return false }
        return ConstantTime.equals(out, hash)
    }

    /// crypt_rn(password, setting); nil on failure (NULL or a "*" result).
    static func compute(_ password: [UInt8], setting: [UInt8]) -> [UInt8]? {
        if password.contains(0) || setting.contains(0) { return nil }
        let size = MemoryLayout<crypt_data>.size
        let data = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        memset(data, 0, size)
        defer {
            explicit_bzero(data, size)
            data.deallocate()
        }
        var phrase = password.map { CChar(bitPattern: $0) } + [0]
        defer { explicit_bzero(&phrase, phrase.count) }
        let settingC = setting.map { CChar(bitPattern: $0) } + [0]
        guard let r = crypt_rn(phrase, settingC, data, Int32(size)) else { return nil }
        let n = strlen(r)
        let out = UnsafeRawBufferPointer(start: r, count: n).map { $0 }
        if out.isEmpty || out[0] == 0x2a { return nil }
        return out
    }

    public enum HashError: Error, CustomStringConvertible {
        case badPassword, noSalt(String), failed(String)
        public var description: String {
            switch self {
            case .badPassword: return "password contains a NUL byte"
            case .noSalt(let s): return "unable to make a salt for scheme \(s)"
            case .failed(let s): return "unable to hash with scheme \(s)"
            }
        }
    }
}

public enum ConstantTime {
    /// Compares in time that depends only on the lengths, never on where
    /// the first difference is.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        let n = max(a.count, b.count)
        var i = 0
        while i < n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= x ^ y
            i += 1
        }
        return diff == 0
    }
}
