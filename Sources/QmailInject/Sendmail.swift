// qmail's sendmail wrapper: maps sendmail's options onto qmail-inject
// (-t: header recipients plus arguments, "-H"; otherwise argument
// recipients only, "-a"), runs qmail-qread for -bp (or as "mailq") and
// qmail-smtpd for -bs, and ignores the many options that mean nothing to
// qmail. As netqmail's sendmail (1.04 on), -f also makes the sender the
// From: address of a message that has none. Runs as the invoking user and
// trusts nothing but its home.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum Sendmail {
    public enum Action: Equatable, Sendable {
        /// Run qmail-inject with these arguments (after the program name)
        /// and these changes to the environment, in order (nil: unset).
        case inject(args: [String], environment: [(String, String?)])
        case mailq
        case smtpd
        case usage
        case newaliases

        public static func == (a: Action, b: Action) -> Bool {
            switch (a, b) {
            case let (.inject(x, e), .inject(y, f)):
                return x == y && e.map { "\($0.0)=\($0.1 ?? "(unset)")" } == f.map { "\($0.0)=\($0.1 ?? "(unset)")" }
            case (.mailq, .mailq), (.smtpd, .smtpd), (.usage, .usage), (.newaliases, .newaliases): return true
            default: return false
            }
        }
    }

    public static let usageText = "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"

    /// Options taking an argument ("-oi", "-o i"); all but f, r, F, b are ignored.
    static let withArgument = Set("froFepBbhNOLRVXC".utf8)
    /// Options without an argument, all ignored except t.
    static let flags = Set("tvimxUGn".utf8)

    /// Decides what to do for `args` (without the program name) when
    /// invoked as `programName`.
    public static func plan(programName: String, _ args: [String]) -> Action {
        var header = false
        var sender: String? = nil
        var env: [(String, String?)] = []
        var i = 0
        argLoop: while i < args.count {
            let a = Array(args[i].utf8)
            if a == Array("--".utf8) { i += 1; break }
            if a.count < 2 || a[0] != Ascii.minus { break }
            var j = 1
            while j < a.count {
                let c = a[j]
                if c == UInt8(ascii: "E") || c == UInt8(ascii: "J") {
                    break  // Sony NEWS-OS: the rest of this argument is ignored
                }
                if flags.contains(c) {
                    if c == UInt8(ascii: "t") { header = true }
                    j += 1
                    continue
                }
                guard withArgument.contains(c) else { return .usage }
                let value: String
                if j + 1 < a.count {
                    value = Array(a[(j + 1)...]).string
                } else if i + 1 < args.count {
                    i += 1
                    value = args[i]
                } else {
                    return .usage
                }
                switch c {
                case UInt8(ascii: "f"), UInt8(ascii: "r"): sender = value
                case UInt8(ascii: "F"): env.append(("MAILNAME", value))
                case UInt8(ascii: "b"):
                    switch value.utf8.first {
                    case UInt8(ascii: "m"): break
                    case UInt8(ascii: "p"): return .mailq
                    case UInt8(ascii: "s"): return .smtpd
                    default: return .usage
                    }
                default: break
                }
                i += 1
                continue argLoop
            }
            i += 1
        }
        if programName == "mailq" { return .mailq }
        if programName == "newaliases" { return .newaliases }
        var out = [header ? "-H" : "-a"]
        if let sender {
            out += ["-f", sender]
            env += fromSender(sender)
        }
        out.append("--")
        out += args[i...]
        return .inject(args: out, environment: env)
    }

    /// netqmail's do_sender(): the From: that qmail-inject writes when the
    /// message has none is the -f address, bare: no full name (a -F given
    /// too is dropped), the user before the last '@', the host after it or,
    /// without an '@', qmail-inject's default host.
    static func fromSender(_ sender: String) -> [(String, String?)] {
        var env: [(String, String?)] = ["QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"].map { ($0, nil) }
        let s = Array(sender.utf8)
        guard let at = s.lastIndex(of: Ascii.at) else { return env + [("QMAILUSER", sender)] }
        env.append(("QMAILHOST", Array(s[(at + 1)...]).string))
        env.append(("QMAILUSER", Array(s[..<at]).string))
        return env
    }

    public static func main(_ argv: [String]) -> Int32 {
        let home = QmailHome.current()
        if chdir(home.path) != 0 {
            Sys.warn("sendmail: fatal: unable to switch to qmail home directory")
            return QmailExit.temporary
        }
        let name = FileIO.baseName(argv.first ?? "sendmail")
        switch plan(programName: name, Array(argv.dropFirst())) {
        case .usage:
            Sys.warn(usageText)
            return QmailExit.permanent
        case .newaliases:
            Sys.warn("sendmail: fatal: please use fastforward/newaliases instead")
            return QmailExit.permanent
        case .mailq:
            let e = ChildProcess.exec(.init([home.bin("qmail-qread")], program: home.bin("qmail-qread")))
            Sys.warn("sendmail: fatal: unable to run qmail-qread: \(Sys.strerror(e.errno))")
            return QmailExit.temporary
        case .smtpd:
            // A session on stdin/stdout from a local user: allowed to relay,
            // described as a loopback TCP connection, unless already set up.
            if Sys.getenv("PROTO") == nil {
                for (k, v) in [("RELAYCLIENT", ""), ("DATABYTES", "0"), ("PROTO", "TCP"),
                               ("TCPLOCALIP", "127.0.0.1"), ("TCPLOCALHOST", "localhost"),
                               ("TCPREMOTEIP", "127.0.0.1"), ("TCPREMOTEHOST", "localhost"),
                               ("TCPREMOTEINFO", "sendmail-bs")] {
                    setenv(k, v, 1)
                }
            }
            let e = ChildProcess.exec(.init([home.bin("qmail-smtpd")], program: home.bin("qmail-smtpd")))
            Sys.warn("sendmail: fatal: unable to run qmail-smtpd: \(Sys.strerror(e.errno))")
            return QmailExit.temporary
        case let .inject(args, env):
            for (k, v) in env {
                if let v { setenv(k, v, 1) } else { unsetenv(k) }
            }
            let prog = home.bin("qmail-inject")
            let e = ChildProcess.exec(.init([prog] + args, program: prog))
            Sys.warn("sendmail: fatal: unable to run qmail-inject: \(Sys.strerror(e.errno))")
            return QmailExit.temporary
        }
    }
}
