// predate: runs a program with a Date field (local time, numeric zone, as
// qmail's predate writes it) in front of the message on its stdin. The
// program's exit code is predate's.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum Predate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// "Date: 21 Nov 2026 07:50:12 +0100\n" in local time.
    public static func dateLine(_ t: Int) -> [UInt8] {
        var tt = time_t(t)
        var tm = Glibc.tm()
        localtime_r(&tt, &tm)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let off = Int(tm.tm_gmtoff)
        let minutes = (abs(off) + 30) / 60
        let zone = (off < 0 ? "-" : "+") + two(minutes / 60) + two(minutes % 60)
        let s = "Date: \(tm.tm_mday) \(months[Int(tm.tm_mon)]) \(Int(tm.tm_year) + 1900) "
            + "\(two(Int(tm.tm_hour))):\(two(Int(tm.tm_min))):\(two(Int(tm.tm_sec))) \(zone)\n"
        return Array(s.utf8)
    }

    public static func main(_ args: [String]) -> Int32 {
        guard !args.isEmpty else {
            Sys.warn("predate: usage: predate child")
            return QmailExit.permanent
        }
        signal(SIGPIPE, SIG_IGN)
        let pipe: (read: Int32, write: Int32)
        do { pipe = try Sys.pipeCloexec() } catch {
            Sys.warn("predate: fatal: unable to create pipe: \(error)")
            return QmailExit.temporary
        }
        let pid: pid_t
        do { pid = try ChildProcess.spawn(.init(args, fds: [.dup(pipe.read, to: 0)])) } catch {
            Sys.warn("predate: fatal: unable to run \(args[0]): \(Sys.strerror(error.errno))")
            return QmailExit.temporary
        }
        Sys.close(pipe.read)
        // A child that stops reading early is its own business: its exit
        // code decides, as in qmail.
        // A read error must not hand the child a truncated message it
        // would take as complete: the child is killed instead.
        let out = ByteWriter(fd: pipe.write, capacity: 65536)
        var writeFailed = false
        var readFailed = false
        func put(_ b: UnsafeRawBufferPointer) {
            if writeFailed { return }
            do { try out.put(b) } catch { writeFailed = true }
        }
        dateLine(Sys.now()).withUnsafeBytes { put($0) }
        do { try ByteReader(fd: 0, capacity: 65536).forEachChunk { put($0) } } catch { readFailed = true }
        if readFailed {
            kill(pid, SIGKILL)
        } else if !writeFailed {
            try? out.flush()
        }
        Sys.close(pipe.write)
        if readFailed {
            _ = ChildProcess.wait(pid)
            Sys.warn("predate: fatal: unable to read input")
            return QmailExit.temporary
        }
        guard let code = ChildProcess.wait(pid)?.exitCode else {
            Sys.warn("predate: fatal: child crashed")
            return QmailExit.temporary
        }
        return code
    }
}
