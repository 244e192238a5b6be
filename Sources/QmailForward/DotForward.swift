// dot-forward: follows a user's sendmail-style .forward from a .qmail file
// ("|dot-forward .forward" then the normal mailbox), as djb's dot-forward
// 0.71 does.
//
// Runs as the user under qmail-local, in the user's home directory. It
// trusts the .forward only as much as the user (it runs the user's
// programs as the user). Environment from qmail-local: USER and HOST (to
// recognise "deliver to me"), NEWSENDER (the envelope sender for
// forwarding), UFLINE, RPLINE and DTLINE.
//
// Exit codes: 99 when the file forwarded or piped the message (qmail-local
// skips the rest of .qmail); 0 when no file exists, the files are empty, or
// the file asks for delivery to the user; 100 when a program bounced; 111
// for temporary trouble (an unreadable file, a syntax error, a failed queue).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public final class DotForward {
    let deliver: Bool
    let q: Qualifier
    let user: [UInt8]
    let host: [UInt8]
    let sender: [UInt8]
    let ufline: [UInt8], rpline: [UInt8], dtline: [UInt8]
    let log: (String) -> Void

    // Per file.
    var targets: [[UInt8]] = []
    var acted = false
    var direct = false

    init(deliver: Bool, qualifier: Qualifier, log: @escaping (String) -> Void) {
        self.deliver = deliver
        self.q = qualifier
        self.log = log
        ufline = env("UFLINE") ?? []
        rpline = env("RPLINE") ?? []
        dtline = env("DTLINE") ?? []
        sender = env("NEWSENDER") ?? []
        user = env("USER") ?? []
        host = env("HOST") ?? []
    }

    func gotAddress(_ text: [UInt8], hasAt: Bool) throws {
        if text.isEmpty { return }
        if !hasAt && text.caseInsensitiveEquals(user) {
            acted = true
            direct = true
            return
        }
        if hasAt && text.count == user.count + 1 + host.count,
           Array(text[0..<user.count]).caseInsensitiveEquals(user), text[user.count] == Ascii.at,
           Array(text[(user.count + 1)...]).caseInsensitiveEquals(host) {
            acted = true
            direct = true
            return
        }
        if !hasAt && text[0] == Ascii.slash {
            throw ForwardFatal.temporary("file delivery \(DotForward.cString(text)) not supported")
        }
        if !hasAt && text[0] == UInt8(ascii: "|") {
            acted = true
            try runCommand(Array(text[1...]))
            return
        }
        let address = DotForward.cBytes(q.qualify(text, hasAt: hasAt))
        targets.append(address)
        if !deliver { log("forward \(address.string)\n") }
    }

    /// djb's tools treat these as C strings: a NUL ends the text.
    static func cBytes(_ b: [UInt8]) -> [UInt8] {
        guard let z = b.firstIndex(of: 0) else { return b }
        return Array(b[..<z])
    }

    static func cString(_ b: [UInt8]) -> String { cBytes(b).string }

    func runCommand(_ cmd: [UInt8]) throws {
        let command = DotForward.cString(cmd)
        if !deliver {
            log("pipe through \(command)\n")
            return
        }
        try ProgramRunner.deliver(command, searchPath: false, prefix: ufline + rpline + dtline, crashText: "child crashed")
    }

    /// Follows one file. Returns nil to try the next file, or the exit code.
    func tryFile(_ fn: String) throws -> Int32? {
        let fd: Int32
        do { fd = try Sys.open(fn, O_RDONLY) } catch let e as SysError {
            if e.errno == ENOENT { return nil }
            throw ForwardFatal.temporary("unable to open \(fn): \(Sys.strerror(e.errno))")
        }
        defer { Sys.close(fd) }
        targets = []
        acted = false
        direct = false
        let reader = ByteReader(fd: fd, capacity: 4096)
        while true {
            let got: (bytes: [UInt8], overflow: Bool)?
            do { got = try reader.line() } catch let e as SysError {
                throw ForwardFatal.temporary("unable to read \(fn): \(Sys.strerror(e.errno))")
            }
            guard let line = got?.bytes else { break }
            if line[0] != Ascii.hash {
                guard let toks = Token822Scanner.parse(line) else { throw DotForward.parseError(line) }
                var items: [AddressItem] = []
                let failed = AddressList.walk(toks, includes: false, into: &items)
                for item in items { try gotAddress(toks.text(of: item), hasAt: item.hasAt) }
                if failed { throw DotForward.parseError(line) }
            }
        }
        if !targets.isEmpty {
            acted = true
            if deliver {
                let qp = try Forwarder.queue(dtline: dtline, sender: sender, recipients: targets,
                                             context: "unable to forward message: ")
                Sys.warn("dot-forward: info: qp \(qp)")
            }
        }
        if direct {
            if !deliver { log("direct delivery\n") }
            return 0
        }
        if !acted {
            if !deliver { log("skipping empty file \(fn)\n") }
            return nil
        }
        return 99
    }

    static func parseError(_ line: [UInt8]) -> ForwardFatal {
        ForwardFatal.temporary("unable to parse this line: \(cString(line))")
    }

    public static func main(_ argv: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        return runMain("dot-forward") {
            guard let (flags, files) = getopt(argv, "nN") else {
                throw ForwardFatal.permanent("dot-forward: usage: dot-forward [ -nN ] file ...", bare: true)
            }
            let deliver = flags.last != UInt8(ascii: "n")
            let q = try Qualifier.load(controlDirectory: QmailHome.current().control)
            let df = DotForward(deliver: deliver, qualifier: q) { Sys.warnRaw($0) }
            for f in files {
                if let code = try df.tryFile(f) { return code }
            }
            if !deliver { Sys.warnRaw("direct delivery\n") }
            return 0
        }
    }
}
