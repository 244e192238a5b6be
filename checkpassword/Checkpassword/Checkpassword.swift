// The checkpassword interface, one skeleton for every backend:
//   read "user\0password\0timestamp\0" (at most 512 bytes) from fd 3;
//   on success set USER, HOME, SHELL (and MAILDIR), become the user
//   (setgid, initgroups/setgroups, setuid), chdir HOME, exec argv[1...];
//   exit 1 for a bad login, 2 for misuse, 111 for a temporary failure.
// Runs as root under qmail-popup; trusts only its backend. A mailbox with
// uid 0 is refused: mail is never read as root.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import UserDirectory

public enum Checkpassword {
    public static let badLogin: Int32 = 1
    public static let misuse: Int32 = 2
    public static let temporary: Int32 = QmailExit.temporary
    /// The interface's limit on what fd 3 carries.
    public static let inputLimit = 512

    public struct Request {
        public var user: [UInt8]
        public var password: [UInt8]
        public var timestamp: [UInt8]
    }

    public enum InputError: Error, Equatable { case tooLong, malformed, unreadable(Int32) }

    /// Parses what fd 3 carried: three NUL-terminated fields (anything
    /// after the third is ignored, as in djb's checkpassword).
    public static func parse(_ data: [UInt8]) throws -> Request {
        if data.count > inputLimit { throw InputError.tooLong }
        var fields: [[UInt8]] = []
        var start = 0
        for (i, c) in data.enumerated() where c == 0 && fields.count < 3 {
            fields.append(Array(data[start..<i]))
            start = i + 1
        }
        guard fields.count == 3 else { throw InputError.malformed }
        return Request(user: fields[0], password: fields[1], timestamp: fields[2])
    }

    /// Reads fd 3 to end of file, at most inputLimit bytes.
    static func readInput(fd: Int32 = 3) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: inputLimit + 1)
        var n = 0
        while true {
            let r = buf.withUnsafeMutableBytes { p in Glibc.read(fd, p.baseAddress! + n, p.count - n) }
            if r < 0 {
                if errno == EINTR { continue }
                throw InputError.unreadable(errno)
            }
            if r == 0 { break }
            n += r
            if n > inputLimit { explicit_bzero(&buf, buf.count); throw InputError.tooLong }
        }
        let out = Array(buf[0..<n])
        explicit_bzero(&buf, buf.count)
        return out
    }

    /// The whole program: `name` for messages, `argv` as given (argv[1...]
    /// is the program to run), `backend` made only after the input is read.
    /// Returns only when it does not exec the program: the exit code.
    public static func main(name: String, argv: [String], backend: () -> UserBackend) -> Int32 {
        guard argv.count >= 2 else {
            Sys.warn("\(name): usage: \(name) prog [arg ...] (with user\\0password\\0timestamp\\0 on fd 3)")
            return misuse
        }
        var request: Request
        do {
            var raw = try readInput()
            request = try parse(raw)
            explicit_bzero(&raw, raw.count)
        } catch InputError.tooLong {
            Sys.warn("\(name): input on fd 3 is longer than \(inputLimit) bytes")
            return badLogin
        } catch InputError.unreadable(let e) {
            Sys.warn("\(name): unable to read fd 3: \(Sys.strerror(e))")
            return e == EBADF ? misuse : temporary
        } catch {
            Sys.warn("\(name): malformed input on fd 3 (want user\\0password\\0timestamp\\0)")
            return misuse
        }
        _ = Glibc.close(3)
        let result = Authenticator.authenticate(backend(), login: request.user, password: request.password,
                                                timestamp: request.timestamp)
        explicit_bzero(&request.password, request.password.count)
        switch result {
        case .temporary(let why):
            Sys.warn("\(name): temporary failure: \(why)")
            return temporary
        case .unknownUser, .mismatch, .disabled:
            return badLogin
        case .ok(let m):
            return become(m, name: name, argv: Array(argv[1...]))
        }
    }

    /// Sets the environment, drops to the mailbox's user, enters its home
    /// and execs `program`. Returns only on failure, the exit code.
    static func become(_ m: Mailbox, name: String, argv program: [String]) -> Int32 {
        if m.uid == 0 {
            Sys.warn("\(name): refusing to log in \(m.login.string): uid 0")
            return badLogin
        }
        setenv("USER", m.login.string, 1)
        setenv("HOME", m.home, 1)
        setenv("SHELL", m.shell, 1)
        setenv("MAILDIR", m.maildir, 1)
        // Our ids are the mailbox's for good before its home is entered.
        let c = Credentials(uid: m.uid, gid: m.gid, groups: m.initGroups ? .member(user: m.login.string) : nil)
        let e = ChildProcess.exec(.init(program: program[0], argv: program.map { Array($0.utf8) }, searchPath: true,
                                        credentials: c, directory: m.home))
        switch e.step {
        case .credentials: Sys.warn("\(name): unable to switch to uid \(m.uid): \(Sys.strerror(e.errno))")
        case .directory: Sys.warn("\(name): unable to chdir to \(m.home): \(Sys.strerror(e.errno))")
        default: Sys.warn("\(name): \(e)")
        }
        return temporary
    }
}
