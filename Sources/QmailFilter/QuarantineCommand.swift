// qmail-quarantine: lists, shows, releases and deletes what qmail-filter
// kept in HOME/quarantine. Exit 0 done, 100 no such message or bad usage,
// 111 temporary failure (release: qmail-queue refused or failed; the
// message stays). Each release and delete is logged on stderr.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum QuarantineCommand {
    static let usage = "usage: qmail-quarantine list | show ID | release ID | delete ID"

    public static func main(_ args: [String], home: QmailHome = QmailHome.current()) -> Int32 {
        let q = Quarantine(home: home)
        func say(_ s: String) { Sys.warn("qmail-quarantine: " + s) }
        var out: [UInt8] = []
        func print(_ s: String) { out += Array((s + "\n").utf8) }
        defer { try? Sys.writeAll(1, out) }
        do {
            switch (args.first, args.count) {
            case ("list", 1):
                for id in try q.ids() {
                    guard let m = try q.load(id) else { continue }
                    let rcpts = m.recipients.map { $0.string }.joined(separator: ",")
                    print("\(id) \(Date822.qmail(m.time)) \(m.message.count) <\(m.sender.string)> \(rcpts) \(m.reason)")
                }
                return 0
            case ("show", 2), ("release", 2), ("delete", 2):
                guard let m = try q.load(args[1]) else { say("no message \(args[1])"); return QmailExit.permanent }
                let who = "\(m.id) from <\(m.sender.string)> to \(m.recipients.map { "<\($0.string)>" }.joined(separator: " "))"
                switch args[0] {
                case "show":
                    print("Quarantine-Reason: \(m.reason)")
                    print("Envelope-From: <\(m.sender.string)>")
                    for r in m.recipients { print("Envelope-To: <\(r.string)>") }
                    print("")
                    out += m.message
                case "release":
                    if let f = q.release(m) {
                        say("unable to release \(who): \(f.description)")
                        return f.exitCode
                    }
                    say("released \(who) (\(m.reason))")
                default:
                    try q.delete(m.id)
                    say("deleted \(who) (\(m.reason))")
                }
                return 0
            default:
                say(usage)
                return QmailExit.permanent
            }
        } catch {
            say("\(error)")
            return QmailExit.temporary
        }
    }
}
