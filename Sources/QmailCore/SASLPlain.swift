// SASL PLAIN (RFC 4616) after base64: "authzid NUL authcid NUL passwd".
// qmail-smtpd and qmail-popup log in the authentication identity and
// nobody else: an authorization identity that names another user is
// refused, since neither program can act for someone else (taking the
// login and dropping the authzid would let bob's client believe it is
// bob while it sends as alice).

public enum SASLPlain {
    public enum Parsed: Equatable {
        case login(user: [UInt8], password: [UInt8])
        /// Not three fields, or an empty login or password.
        case malformed
        /// An authzid that is neither empty nor the login itself.
        case otherIdentity
    }

    public static func parse(_ decoded: [UInt8]) -> Parsed {
        let f = decoded.split(separator: 0, omittingEmptySubsequences: false)
        guard f.count == 3, !f[1].isEmpty, !f[2].isEmpty else { return .malformed }
        if !f[0].isEmpty && !f[0].elementsEqual(f[1]) { return .otherIdentity }
        return .login(user: Array(f[1]), password: Array(f[2]))
    }
}
