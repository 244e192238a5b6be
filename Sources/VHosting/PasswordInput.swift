// Passwords for the admin commands: given, typed, read or made up.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

public enum PasswordInput {
    /// The password from `arg`; when it is nil or "-", from the terminal
    /// (asked twice, echo off) or else the first line of standard input.
    public static func obtain(_ arg: String?, random: Bool = false) throws -> [UInt8] {
        if random { return randomPassword() }
        if let a = arg, a != "-" { return try Names.password(Array(a.utf8)) }
        if isatty(0) == 1 {
            let first = try prompt("New password: ")
            let second = try prompt("Retype new password: ")
            guard ConstantTime.equals(first, second) else { throw AdminError.refused("the passwords do not match") }
            return try Names.password(first)
        }
        let r = ByteReader(fd: 0, capacity: 1024)
        guard let (line, overflow) = try r.line(limit: Names.maxPassword + 2) else {
            throw AdminError.refused("no password on standard input")
        }
        if overflow { throw AdminError.refused(NameError.tooLong("password", Names.maxPassword).description) }
        var p = line
        if p.last == Ascii.lf { p.removeLast() }
        if p.last == Ascii.cr { p.removeLast() }
        return try Names.password(p)
    }

    static func prompt(_ text: String) throws -> [UInt8] {
        // Echo goes off (discarding typeahead) before the prompt appears,
        // so whatever is typed after the prompt is kept and not shown.
        var old = termios()
        let haveTerm = tcgetattr(0, &old) == 0
        if haveTerm {
            var quiet = old
            quiet.c_lflag &= ~tcflag_t(ECHO)
            _ = tcsetattr(0, TCSAFLUSH, &quiet)
        }
        try? Sys.writeAll(2, text)
        defer {
            if haveTerm { _ = tcsetattr(0, TCSAFLUSH, &old) }
            try? Sys.writeAll(2, "\n")
        }
        var out: [UInt8] = []
        var c: UInt8 = 0
        while out.count <= Names.maxPassword {
            let n = read(0, &c, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || c == Ascii.lf { break }
            out.append(c)
        }
        if out.last == Ascii.cr { out.removeLast() }
        return out
    }

    /// 16 characters from the system's random source (vpopmail's -r).
    public static func randomPassword() -> [UInt8] {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789".utf8)
        var raw = [UInt8](repeating: 0, count: 16)
        _ = getentropy(&raw, raw.count)
        return raw.map { alphabet[Int($0) % alphabet.count] }
    }
}
