// qmail-local's delivery procedure (qmail-local(8), dot-qmail(5),
// qmail-command(8)). It runs as the recipient user, in the user's home
// directory; the message is its seekable standard input. The report goes to
// stdout/stderr (qmail-lspawn collects both); the exit code says success
// (0), permanent failure (100) or temporary failure (111).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public struct LocalArguments: Equatable {
    public var deliver = true
    public var user: [UInt8] = []
    public var homedir: [UInt8] = []
    public var local: [UInt8] = []
    public var dash: [UInt8] = []
    public var ext: [UInt8] = []
    public var host: [UInt8] = []
    public var sender: [UInt8] = []
    public var defaultDelivery: [UInt8] = []

    public init() {}

    /// Parses qmail-local's argv (without argv[0]): [-nN] and eight
    /// operands. Nil means a usage error.
    public static func parse(_ argv: [[UInt8]]) -> LocalArguments? {
        var a = LocalArguments()
        var i = 0
        while i < argv.count, argv[i].count > 1, argv[i].first == Ascii.minus {
            let opt = argv[i]
            i += 1
            if opt == Array("--".utf8) { break }
            for c in opt.dropFirst() {
                switch c {
                case UInt8(ascii: "n"): a.deliver = false
                case UInt8(ascii: "N"): a.deliver = true
                default: return nil
                }
            }
        }
        let ops = Array(argv[i...])
        guard ops.count == 8 else { return nil }
        a.user = ops[0]; a.homedir = ops[1]; a.local = ops[2]; a.dash = ops[3]
        a.ext = ops[4]; a.host = ops[5]; a.sender = ops[6]; a.defaultDelivery = ops[7]
        guard a.homedir.first == Ascii.slash else { return nil }
        return a
    }
}

/// A |command that qmail-local runs inside its own process because the
/// program it names is linked into qmail-local (vdelivermail): given the
/// command's literal words, the program's exit code, or nil when the
/// command is not such a program (it then goes to sh -c as always).
public typealias InProcessProgram = (_ argv: [[UInt8]]) -> Int32?

/// Why a delivery stopped short: the text for standard error (empty when a
/// .qmail program has already said why) and whether qmail-send retries.
public struct LocalStop: Error {
    public let kind: MailFailure.Kind
    public let text: String

    /// qmail-local's exit code: 111 temporary, 100 permanent.
    public var exitCode: Int32 { QmailExit.failure(temporary: kind == .temporary) }
}

public enum LocalDelivery {
    public static let usage = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty"
    /// conf-patrn: the mode bits that make a home or a .qmail unsafe.
    static let unsafeBits: mode_t = 0o002
    /// Largest .qmail file read.
    static let maxDotQmail = 16 << 20

    /// A failure report: "text (#status)".
    static func die(_ f: MailFailure) -> LocalStop {
        LocalStop(kind: f.kind, text: f.description + "\n")
    }

    static func temp(_ text: String, _ status: String = "4.3.0") -> LocalStop {
        die(.temporary(text, status))
    }

    /// qmail-local as a whole, given its argv less argv[0]: writes a
    /// failure's report to fd 2 and returns the exit code (0, 100, 111).
    public static func main(_ argv: [[UInt8]], inProcess: InProcessProgram? = nil) -> Int32 {
        guard let args = LocalArguments.parse(argv) else {
            say(2, usage + "\n")
            return QmailExit.permanent
        }
        do {
            try run(args, inProcess: inProcess)
            return QmailExit.success
        } catch let stop as LocalStop {
            say(2, stop.text)
            return stop.exitCode
        } catch {
            say(2, "\(error)\n")
            return QmailExit.temporary
        }
    }

    /// Runs one delivery as qmail-local does, writing the "did F+W+P"
    /// report on success; throws LocalStop when the delivery fails.
    public static func run(_ a: LocalArguments, inProcess: InProcessProgram? = nil) throws {
        umask(0o077)
        signal(SIGPIPE, SIG_IGN)
        // A file-size limit then fails a write with EFBIG (temporary, mbox
        // truncated back) instead of killing us.
        signal(SIGXFSZ, SIG_IGN)

        let chdirOK = BytePath.with(a.homedir) { Glibc.chdir($0) } == 0
        if !chdirOK { throw temp("Unable to switch to \(a.homedir.string): \(Sys.strerror(errno)).") }
        try checkHome(deliver: a.deliver)

        setEnvironment("HOST", a.host)
        setEnvironment("HOME", a.homedir)
        setEnvironment("USER", a.user)
        setEnvironment("LOCAL", a.local)
        let recipient = a.local + [Ascii.at] + a.host
        setEnvironment("RECIPIENT", recipient)

        var dtline = Array("Delivered-To: ".utf8) + recipient
        dtline = dtline.map { $0 == Ascii.lf ? UInt8(ascii: "_") : $0 }
        dtline.append(Ascii.lf)
        setEnvironment("DTLINE", dtline)

        if a.deliver { try checkLoop(dtline: dtline) }

        setEnvironment("SENDER", a.sender)
        var rpline = Array("Return-Path: <".utf8) + Address.quote(a.sender)
        rpline = rpline.map { $0 == Ascii.lf ? UInt8(ascii: "_") : $0 }
        rpline += Array(">\n".utf8)
        setEnvironment("RPLINE", rpline)

        let ufline = Mbox.fromLine(sender: a.sender, time: Sys.now())
        setEnvironment("UFLINE", ufline)

        setEnvironment("EXT", a.ext)
        let exts = DotQmail.extParts(a.ext)
        setEnvironment("EXT2", exts[0])
        setEnvironment("EXT3", exts[1])
        setEnvironment("EXT4", exts[2])
        let hosts = DotQmail.hostParts(a.host)
        setEnvironment("HOST2", hosts[0])
        setEnvironment("HOST3", hosts[1])
        setEnvironment("HOST4", hosts[2])

        var forwardOnly = false
        var contents: [UInt8] = []
        if let (fd, executable, defaultValue) = try search(dash: a.dash, ext: a.ext) {
            forwardOnly = executable
            if let d = defaultValue { setEnvironment("DEFAULT", d) }
            let r = ByteReader(fd: fd, capacity: 4096)
            let all: [UInt8]?
            do { all = try r.readAll(limit: maxDotQmail) } catch {
                throw temp("Unable to read .qmail file: \(Sys.strerror(errno)).")
            }
            guard let all else { throw temp("Uh-oh: .qmail file is too large.", "4.7.0") }
            contents = all
            Sys.close(fd)
        } else if !a.dash.isEmpty {
            throw die(.permanent("Sorry, no mailbox here by that name.", "5.1.1"))
        }

        let ownerExists = try exists(DotQmail.ownerName(dash: a.dash, ext: a.ext, suffix: "-owner"))
        let ownerDefaultExists = try ownerExists
            && exists(DotQmail.ownerName(dash: a.dash, ext: a.ext, suffix: "-owner-default"))
        let newSender = DotQmail.newSender(sender: a.sender, local: a.local, host: a.host,
                                           ownerExists: ownerExists, ownerDefaultExists: ownerDefaultExists)
        setEnvironment("NEWSENDER", newSender)

        if contents.isEmpty {
            contents = a.defaultDelivery
            forwardOnly = false
        }

        var counts = (file: 0, forward: 0, program: 0)
        var recipients: [[UInt8]] = []
        var isFirst = true
        for ins in DotQmail.parse(contents) {
            defer { isFirst = false }
            switch ins {
            case .blank:
                if isFirst { throw temp("Uh-oh: first line of .qmail file is blank.", "4.2.1") }
            case .comment, .ignored:
                break
            case .forwardOnly:
                forwardOnly = true
            case .mbox(let path):
                counts.file += 1
                if forwardOnly { throw temp("Uh-oh: .qmail has file delivery but has x bit set.", "4.7.0") }
                if a.deliver {
                    try rewind()
                    do {
                        try Mbox.deliver(path: path, fromLine: ufline, header: rpline + dtline, input: 0)
                    } catch let f as MailFailure { throw die(f) } catch { throw temp("Unable to write \(path.string).") }
                } else {
                    say(1, Array("mbox ".utf8) + path + [Ascii.lf])
                }
            case .maildir(let dir):
                counts.file += 1
                if forwardOnly { throw temp("Uh-oh: .qmail has file delivery but has x bit set.", "4.7.0") }
                if a.deliver {
                    try rewind()
                    do {
                        try Maildir.deliver(dir: dir, header: rpline + dtline, input: 0)
                    } catch let f as MailFailure { throw die(f) } catch { throw temp("Temporary error on maildir delivery.") }
                } else {
                    say(1, Array("maildir ".utf8) + dir + [Ascii.lf])
                }
            case .program(let command):
                counts.program += 1
                if forwardOnly { throw temp("Uh-oh: .qmail has prog delivery but has x bit set.", "4.7.0") }
                if a.deliver {
                    if try runProgram(command, inProcess: inProcess) { return try finish(counts, recipients, a.deliver, dtline) }
                } else {
                    say(1, Array("program ".utf8) + command + [Ascii.lf])
                }
            case .forward(let address):
                counts.forward += 1
                if a.deliver {
                    recipients.append(address)
                } else {
                    say(1, Array("forward ".utf8) + address + [Ascii.lf])
                }
            }
        }
        try finish(counts, recipients, a.deliver, dtline)
    }

    /// Forwards (after every other delivery, as dot-qmail(5) says), prints
    /// the "did F+W+P" report.
    static func finish(_ counts: (file: Int, forward: Int, program: Int), _ recipients: [[UInt8]],
                       _ deliver: Bool, _ dtline: [UInt8]) throws {
        var qp: Int32? = nil
        if deliver && !recipients.isEmpty {
            qp = try forward(recipients, sender: environmentBytes("NEWSENDER") ?? [], prefix: dtline)
        }
        var report = "did \(counts.file)+\(counts.forward)+\(counts.program)\n"
        if let qp { report += "qp \(qp)\n" }
        say(1, report)
    }

    static func rewind() throws {
        if !rewindInput() { throw temp("Unable to rewind message.") }
    }

    static func checkHome(deliver: Bool) throws {
        guard let st = BytePath.stat(Array(".".utf8)) else {
            throw temp("Unable to stat home directory: \(Sys.strerror(errno)).")
        }
        if st.st_mode & unsafeBits != 0 { throw temp("Uh-oh: home directory is writable.", "4.7.0") }
        if st.st_mode & S_ISVTX != 0 {
            if deliver { throw temp("Home directory is sticky: user is editing his .qmail file.", "4.2.1") }
            say(2, "Warning: home directory is sticky.\n")
        }
    }

    /// Bounces a message whose header already has our Delivered-To line.
    static func checkLoop(dtline: [UInt8]) throws {
        try rewind()
        let r = ByteReader(fd: 0, capacity: 8192)
        var atStart = true
        while true {
            let got: (bytes: [UInt8], overflow: Bool)?
            do { got = try r.line(limit: dtline.count + 1) } catch {
                throw temp("Unable to read message: \(Sys.strerror(errno)).")
            }
            guard let (line, overflow) = got else { return }
            if overflow {
                // Longer than our line: cannot match; skip the rest of it.
                atStart = false
                continue
            }
            let wasStart = atStart
            atStart = true
            if !wasStart { continue }
            if line.last != Ascii.lf { return }
            if line.count <= 1 { return }
            if line == dtline {
                throw die(.permanent("This message is looping: it already has my Delivered-To line.", "5.4.6"))
            }
        }
    }

    static func exists(_ name: [UInt8]) throws -> Bool {
        if BytePath.stat(name) != nil { return true }
        if errnoIsTemporary(errno) { throw temp("Unable to open \(name.string): \(Sys.strerror(errno)).") }
        return false
    }

    /// Opens the first .qmail file that applies. Returns its descriptor,
    /// whether its owner x bit is set (forward-only) and DEFAULT's value.
    static func search(dash: [UInt8], ext: [UInt8]) throws -> (Int32, Bool, [UInt8]?)? {
        for c in DotQmail.searchOrder(dash: dash, ext: ext) {
            let fd = BytePath.open(c.name, O_RDONLY | O_NONBLOCK)
            if fd < 0 {
                let e = errno
                if errnoIsTemporary(e) || e == EPERM || e == EACCES {
                    throw temp("Unable to open \(c.name.string): \(Sys.strerror(e)).")
                }
                continue
            }
            guard let st = try? Sys.fstat(fd) else { throw temp("Unable to open \(c.name.string): \(Sys.strerror(errno)).") }
            if (st.st_mode & S_IFMT) == S_IFREG {
                if st.st_mode & unsafeBits != 0 { throw temp("Uh-oh: .qmail file is writable.", "4.7.0") }
                return (fd, st.st_mode & 0o100 != 0, c.defaultValue)
            }
            Sys.close(fd)
        }
        return nil
    }

    /// Runs "sh -c command" with the message on stdin, or the program
    /// itself in this process when `inProcess` takes it (same environment,
    /// directory, input and output; its exit code read the same way).
    /// Returns true when the program asked to stop (exit 99); throws when it failed.
    static func runProgram(_ command: [UInt8], inProcess: InProcessProgram?) throws -> Bool {
        try rewind()
        let code: Int32
        if let run = inProcess, let argv = ShellWords.literal(command), let c = run(argv) {
            code = c
        } else {
            let pid: pid_t
            do { pid = try ChildProcess.spawn(.init([Array("/bin/sh".utf8), Array("-c".utf8), command])) } catch {
                throw temp("Unable to run /bin/sh: \(Sys.strerror(error.errno)).")
            }
            switch ChildProcess.wait(pid) {
            case .signaled?, nil: throw temp("Aack, child crashed.")
            case .exited(let c)?: code = c
            }
        }
        if code == 0 { return false }
        if code == 99 { return true }
        // The program has said why on our output already.
        throw LocalStop(kind: QmailExit.permanentForProgram.contains(code) ? .permanent : .temporary, text: "")
    }

    /// Sends the message (with our Delivered-To line first) to `recipients`
    /// through qmail-queue. Returns qmail-queue's pid for the report.
    static func forward(_ recipients: [[UInt8]], sender: [UInt8], prefix: [UInt8]) throws -> Int32 {
        try rewind()
        switch Helpers.queue(prefix: prefix, sender: sender, recipients: recipients) {
        case .success(let qp): return qp
        case .failure(let f):
            throw LocalStop(kind: f.kind, text: "Unable to forward message: \(f.description).\n")
        }
    }
}
