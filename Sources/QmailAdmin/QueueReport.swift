// qmail-qread and qmail-qstat output.
import QmailCore
import QmailQueue

public enum QueueReport {
    /// qmail-qstat: the two counts, in qmail's words, which scripts parse.
    public static func stat(root: String) throws -> String {
        let scan = QueueScan(root: root)
        let mess = try scan.ids(inSplit: "mess").count
        let todo = try scan.ids(inFlat: "todo").count
        return "messages in queue: \(mess)\nmessages in queue but not yet preprocessed: \(todo)\n"
    }

    /// qmail-qread: one line per message, then one per recipient. Messages
    /// still in todo/ (not yet preprocessed by qmail-send) are listed too,
    /// their recipients marked "todo".
    public static func read(root: String) throws -> String {
        var out = ""
        for m in try QueueScan(root: root).messages() {
            let date = Date822.qmail(m.time).replacing(" -0000", with: " GMT")
            out += "\(date)  #\(m.id)  \(m.size)  <\(SendLog.safe(m.sender ?? []))> "
            if m.bouncing { out += " bouncing" }
            out += "\n"
            for r in m.recipients {
                out += "\t" + (r.done ? "done\t" : "") + (r.channel?.name ?? "todo") + "\t" + SendLog.safe(r.address) + "\n"
            }
        }
        return out
    }
}
