// qmail-clean: removes queue files that qmail-send may not remove itself
// (todo/, intd/ and mess/ belong to qmailq). Runs as qmailq; trusts only
// qmail-send on its fd 0. Requests are NUL-terminated:
//   "foop/N"  remove intd/N and mess/S/N (message finished or ossified)
//   "todo/N"  remove intd/N and todo/N   (qmail-send has taken the envelope)
// and each gets one byte back on fd 1: '+' done, '!' could not, 'x' bad
// request. Every 30 requests (and at start) it also removes pid/ files
// older than 36 hours: leftovers of a qmail-queue that died.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

public enum Clean {
    /// qmail's OSSIFIED: 36 hours.
    public static let ossified = 129600

    public enum Request: Equatable {
        case finished(Int)   // foop/N
        case todo(Int)       // todo/N
    }

    public static func parse(_ line: [UInt8]) -> Request? {
        guard line.count >= 6, line.count <= 100 else { return nil }
        let slash = line.firstIndex(of: Ascii.slash) ?? line.count
        let prefix = Array(line[0..<slash]).string
        guard slash < line.count, let id = Decimal.parse(line[(slash + 1)...]) else { return nil }
        switch prefix {
        case "foop": return .finished(id)
        case "todo": return .todo(id)
        default: return nil
        }
    }

    /// Unlinks what `request` names under the current directory (the queue); false on a real error.
    public static func perform(_ request: Request, layout: QueueLayout) -> Bool {
        func rm(_ p: String) -> Bool { unlink(p) == 0 || errno == ENOENT }
        switch request {
        case .finished(let id): return rm(layout.intd(id)) && rm(layout.mess(id))
        case .todo(let id): return rm(layout.intd(id)) && rm(layout.todo(id))
        }
    }

    public static func cleanPid(queue: String, now: Int) {
        guard let names = try? Sys.listDirectory(queue + "/pid") else { return }
        for n in names {
            let p = queue + "/pid/" + n
            guard let st = try? Sys.stat(p) else { continue }
            if now > Int(st.st_atim.tv_sec) + ossified { _ = unlink(p) }
        }
    }

    public static func main() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let home = QmailHome.current()
        guard chdir(home.queue) == 0 else { return QmailExit.temporary }
        let layout = QueueLayout(root: ".")
        let input = ByteReader(fd: 0, capacity: 4096)
        var countdown = 0
        while true {
            if countdown == 0 { cleanPid(queue: ".", now: Sys.now()); countdown = 30 } else { countdown -= 1 }
            guard let got = try? input.line(delimiter: 0, limit: 200) else { break }
            var line = got.bytes
            if got.overflow {
                // Skip the rest of an overlong request; it is refused below.
                while let c = try? input.byte(), c != 0 {}
                line = []
            } else if line.last == 0 {
                line.removeLast()
            } else {
                break  // end of input inside a request
            }
            let answer: UInt8
            if let r = parse(line) {
                answer = perform(r, layout: layout) ? UInt8(ascii: "+") : UInt8(ascii: "!")
            } else {
                answer = UInt8(ascii: "x")
            }
            do { try Sys.writeAll(1, [answer]) } catch { break }
        }
        return 0
    }
}
