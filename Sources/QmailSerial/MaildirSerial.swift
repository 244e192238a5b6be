// maildirserial [-b] [-tlifetime] dir prefix client [arg ...] (serialmail):
// feeds a client (serialsmtp, serialqmtp, or any program speaking the same
// interface) the names of the Maildir's messages for `prefix`, and acts on
// its results: each is a 0-terminated file name, a status byte (K accepted,
// Z temporary, D permanent) and an LF-terminated text. Accepted messages
// are removed; with -b permanently rejected ones are bounced and removed;
// with -t, temporary rejection of a message older than lifetime seconds
// counts as permanent. The client runs again while it makes progress.
// Runs as the Maildir's owner. Exit 0, 100 usage, 111 temporary trouble.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public enum MaildirSerial {
    public static let usage = "usage: maildirserial [ -b ] [ -tlifetime ] dir prefix client [ arg ... ]"

    public static func main(_ args: [String]) -> Int32 {
        var argv = Array(args.dropFirst())
        var bounce = false
        var lifetime: Int? = nil
        while let a = argv.first, a.hasPrefix("-"), a.count > 1 {
            argv.removeFirst()
            if a == "--" { break }
            if a == "-b" { bounce = true; continue }
            if a.hasPrefix("-t") {
                var v = String(a.dropFirst(2))
                if v.isEmpty, let n = argv.first { v = n; argv.removeFirst() }
                guard let n = Int(v), n >= 0 else { Sys.warn(usage); return QmailExit.permanent }
                lifetime = n
                continue
            }
            Sys.warn(usage); return QmailExit.permanent
        }
        guard argv.count >= 3 else { Sys.warn(usage); return QmailExit.permanent }
        let dir = argv[0], prefix = Array(argv[1].utf8), client = Array(argv[2...])
        guard (try? Sys.chdir(dir)) != nil else {
            Sys.warn("maildirserial: fatal: unable to switch to \(dir): \(Sys.strerror(errno))"); return QmailExit.temporary
        }
        // messages for us, by name relative to dir
        var pending: [String: SerialMessage] = [:]
        var mtimes: [String: Int] = [:]
        for sub in ["new", "cur"] {
            guard let names = try? Sys.listDirectory(sub) else {
                Sys.warn("maildirserial: fatal: unable to scan \(dir)/\(sub)"); return QmailExit.temporary
            }
            for n in names where !n.hasPrefix(".") {
                let p = "\(sub)/\(n)"
                guard let st = try? Sys.stat(p), let data = try? FileIO.read(p, limit: 1 << 30),
                      let m = SerialFormat.parse(data, prefix: prefix) else { continue }
                pending[p] = m
                mtimes[p] = Int(st.st_mtim.tv_sec)
            }
        }
        let home = QmailHome.current()
        var stuck = 0
        while !pending.isEmpty {
            let names = pending.keys.sorted()
            guard let results = runClient(client, names) else {
                Sys.warn("maildirserial: fatal: unable to run \(client[0])"); return QmailExit.temporary
            }
            var progress = false
            for (name, status, text) in results {
                guard let m = pending[name] else { continue }
                progress = true
                var s = status
                if s == UInt8(ascii: "Z"), let life = lifetime, Sys.now() - (mtimes[name] ?? Sys.now()) > life {
                    s = UInt8(ascii: "D")
                }
                switch s {
                case UInt8(ascii: "K"):
                    _ = try? Sys.unlink(name)
                    pending[name] = nil
                case UInt8(ascii: "D"):
                    pending[name] = nil
                    if bounce {
                        if let f = MaildirSMTP.bounce(m, reason: text, home: home) {
                            Sys.warn("maildirserial: \(name): unable to bounce: \(f.description)")
                        } else {
                            _ = try? Sys.unlink(name)
                        }
                    }
                default:
                    pending[name] = nil   // temporary: stays for the next run
                }
            }
            if !progress {
                stuck += 1
                if stuck >= 2 {
                    Sys.warn("maildirserial: \(client[0]) is not making progress; \(pending.count) messages left")
                    return QmailExit.temporary
                }
            } else {
                stuck = 0
            }
        }
        return 0
    }

    /// Runs the client with the names on its input; its parsed results.
    static func runClient(_ argv: [String], _ names: [String]) -> [(String, UInt8, String)]? {
        guard let input = try? Sys.pipeCloexec(), let output = try? Sys.pipeCloexec() else { return nil }
        let pid = try? ChildProcess.spawn(.init(argv, fds: [.dup(input.read, to: 0), .dup(output.write, to: 1)]))
        Sys.close(input.read)
        Sys.close(output.write)
        guard let pid else { Sys.close(input.write); Sys.close(output.read); return nil }
        // write the list and read the results together: either may fill a pipe
        var list: [UInt8] = []
        for n in names { list += Array(n.utf8) + [0] }
        signal(SIGPIPE, SIG_IGN)
        var written = 0
        _ = fcntl(input.write, F_SETFL, O_NONBLOCK)
        var results: [(String, UInt8, String)] = []
        var buf: [UInt8] = []
        var readDone = false
        while !readDone {
            var fds = [pollfd(fd: output.read, events: Int16(POLLIN), revents: 0)]
            if written < list.count { fds.append(pollfd(fd: input.write, events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 { if errno == EINTR { continue }; break }
            if fds.count > 1, fds[1].revents != 0 {
                let n = list[written...].withUnsafeBytes { write(input.write, $0.baseAddress!, $0.count) }
                if n > 0 { written += n } else if errno != EAGAIN { written = list.count }
                if written >= list.count { Sys.close(input.write) }
            }
            if fds[0].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = chunk.withUnsafeMutableBytes { read(output.read, $0.baseAddress!, $0.count) }
                if n <= 0 { readDone = true } else { buf += chunk[0..<n] }
            }
        }
        if written < list.count { Sys.close(input.write) }
        Sys.close(output.read)
        _ = ChildProcess.wait(pid)
        // name\0 status text\n ...
        var i = 0
        while let z = buf[i...].firstIndex(of: 0), z + 1 < buf.count, let nl = buf[(z + 1)...].firstIndex(of: Ascii.lf) {
            let name = String(decoding: buf[i..<z], as: UTF8.self)
            results.append((name, buf[z + 1], SendLog.safe(Array(buf[(z + 2)..<nl]))))
            i = nl + 1
        }
        return results
    }
}
