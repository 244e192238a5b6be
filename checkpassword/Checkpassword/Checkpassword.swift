// The checkpassword interface, one skeleton for every backend:
//   read "user\0password\0timestamp\0" (at most 512 bytes) from fd 3;
//   on success set USER, HOME, SHELL (and MAILDIR), become the user
//   (setgid, initgroups/setgroups, setuid), chdir HOME, exec argv[1...];
//   exit 1 for a bad login, 2 for misuse, 111 for a temporary failure.
// Runs as root under qmail-popup; trusts only its backend. A mailbox with
// uid 0 is refused: mail is never read as root.
// A mailbox whose home host (issue 22) is another host is not served here:
// instead of qmail-pop3d, qmail-pop3proxy HOST runs (as the mailbox's user,
// in /), reading "login\0password\0" on its fd 3, and relays the session
// to that host's POP3 server.
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
        do { return try SecretInput.read(fd: fd, limit: inputLimit) } catch {
            switch error {
            case .tooLong: throw InputError.tooLong
            case .unreadable(let e): throw InputError.unreadable(e)
            }
        }
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
        let directory = backend()
        let result = Authenticator.authenticate(directory, login: request.user, password: request.password,
                                                timestamp: request.timestamp)
        defer { explicit_bzero(&request.password, request.password.count) }
        switch result {
        case .temporary(let why):
            Sys.warn("\(name): temporary failure: \(why)")
            return temporary
        case .unknownUser, .mismatch, .disabled:
            return badLogin
        case .ok(var m):
            defer { if m.clearPassword != nil { explicit_bzero(&m.clearPassword!, m.clearPassword!.count) } }
            let elsewhere: String?
            do { elsewhere = try HomeHost.elsewhere(m, home: QmailHome.current()) } catch {
                Sys.warn("\(name): temporary failure: \(error)")
                return temporary
            }
            guard let host = elsewhere else { return become(m, name: name, argv: Array(argv[1...])) }
            guard let proxy = proxyProgram(for: argv[1]) else {
                // Not a POP3 login (SMTP AUTH's program, say): it runs
                // here, but the mailbox's home directory is another host's.
                return become(m, name: name, argv: Array(argv[1...]), directory: "/")
            }
            // The secret the home host checks: the password, also when the
            // client sent an APOP digest of it (only a plain password
            // stored in the directory can have matched one).
            let clear = directory.plainPasswordsEnabled ? m.clearPassword.flatMap { $0.isEmpty ? nil : $0 } : nil
            var login = m.login + [0] + (clear ?? request.password) + [0]
            defer { explicit_bzero(&login, login.count) }
            return become(m, name: name, argv: [proxy, host], directory: "/", handOn: login)
        }
    }

    /// Mailboxes homed on another host (issue 22): qmail-pop3proxy takes
    /// the place of qmail-pop3d, found the same way (beside it, or in
    /// PATH); nil for any other program.
    static func proxyProgram(for program: String) -> String? {
        guard FileIO.baseName(program) == "qmail-pop3d" else { return nil }
        return program.contains("/") ? FileIO.directoryOf(program) + "/qmail-pop3proxy" : "qmail-pop3proxy"
    }

    /// Sets the environment, drops to the mailbox's user, enters its home
    /// (or `directory`) and execs `program`, with `handOn` to read on its
    /// fd 3 (through a pipe: never argv or the environment). Returns only on
    /// failure, the exit code.
    static func become(_ m: Mailbox, name: String, argv program: [String], directory: String? = nil,
                       handOn: [UInt8]? = nil) -> Int32 {
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
        var fds: [FdAction] = []
        if let handOn {
            // At most inputLimit bytes and then some: within a pipe's buffer.
            guard let p = try? Sys.pipeCloexec() else {
                Sys.warn("\(name): unable to make a pipe: \(Sys.strerror(errno))")
                return temporary
            }
            let written = (try? Sys.writeAll(p.write, handOn)) != nil
            _ = Glibc.close(p.write)
            if !written {
                _ = Glibc.close(p.read)
                Sys.warn("\(name): unable to write to a pipe: \(Sys.strerror(errno))")
                return temporary
            }
            fds = [.dup(p.read, to: 3)]
        }
        let e = ChildProcess.exec(.init(program: program[0], argv: program.map { Array($0.utf8) }, searchPath: true,
                                        fds: fds, credentials: c, directory: directory ?? m.home))
        switch e.step {
        case .credentials: Sys.warn("\(name): unable to switch to uid \(m.uid): \(Sys.strerror(e.errno))")
        case .directory: Sys.warn("\(name): unable to chdir to \(m.home): \(Sys.strerror(e.errno))")
        default: Sys.warn("\(name): \(e)")
        }
        return temporary
    }
}
