// qmail-showctl: prints the compiled-in facts and every control file's
// effective value, marking defaults, and names files qmail does not use.
import QmailCore
import QmailQueue

public enum ShowCtl {
    public static func render(home: QmailHome) -> String {
        let c = Control(home: home)
        var out = ""
        out += "qmail home directory: \(home.path).\n"
        out += "user-ext delimiter: -.\n"
        out += "paternalism (in decimal): 2.\n"
        out += "silent concurrency limit: 120.\n"
        out += "subdirectory split: \(QueueLayout.split).\n"
        switch Result(catching: { try QmailIds.load(home: home) }) {
        case .success(let ids):
            out += "mode: \(ids.singleUser ? "single-user" : "multi-user").\n"
            out += "user ids: " + QmailIds.users.map { "\($0) \(ids.uid($0).map(String.init) ?? "?")" }.joined(separator: ", ") + ".\n"
            out += "group ids: " + QmailIds.groups.map { "\($0) \(ids.gid($0).map(String.init) ?? "?")" }.joined(separator: ", ") + ".\n"
        case .failure(let error):
            out += "ids: \(error).\n"
        }
        let me = (try? c.me()).flatMap { $0 }
        for d in ControlFiles.all {
            out += "\n"
            do {
                out += try describe(d, c, me: me)
            } catch {
                out += "\(d.name): Oops! Unable to read: \(error).\n"
            }
        }
        if let names = try? Sys.listDirectory(home.control) {
            let known = Set(ControlFiles.all.map(\.name))
            let extra = names.filter { !known.contains($0) }.sorted()
            for n in extra {
                if let own = ControlFiles.ours.first(where: { $0.name == n }) {
                    out += "\n" + describeOwn(own, c)
                } else {
                    out += "\n\(n): not a qmail 1.03 control file; some other program may read it.\n"
                }
            }
        }
        return out
    }

    /// One of swift-qmail's own files: who reads it and, when listed, its lines.
    static func describeOwn(_ own: ControlFiles.Own, _ c: Control) -> String {
        var s = "\(own.name): swift-qmail's, read by \(own.usedBy)"
        if !own.listed { return s + "; contents not shown.\n" }
        guard let lines = try? c.list(own.name) else { return s + ".\n" }
        s += "; \(lines.count) line\(lines.count == 1 ? "" : "s")\n"
        for l in lines.prefix(50) { s += "  \(l.string)\n" }
        return s
    }

    static func describe(_ d: ControlDefault, _ c: Control, me: [UInt8]?) throws -> String {
        let present = try c.raw(d.name) != nil
        let tag = present ? "" : "(Default.) "
        switch d.kind {
        case .line:
            if let v = try c.lineWithDefault(d.name) {
                return "\(d.name): \(tag)\(v.string)\n"
            }
            return "\(d.name): \(tag)(none)\(d.name == "me" ? " - qmail will not run without me" : "")\n"
        case .number:
            return "\(d.name): \(tag)\(try c.number(d.name))\n"
        case .list:
            let lines = try c.list(d.name)
            if !present && lines.isEmpty { return "\(d.name): (Default.) empty\n" }
            var s = "\(d.name): \(tag)\(lines.count) line\(lines.count == 1 ? "" : "s")\n"
            // smtproutes may hold relay passwords: this output gets pasted to lists.
            for l in lines { s += "  \((d.name == "smtproutes" ? SMTPRoute.hidingPassword(l) : l).string)\n" }
            return s
        case .cdb:
            guard let r = try CdbReader.open(c.path(d.name)) else { return "\(d.name): (Default.) absent\n" }
            let n = try r.records().count
            return "\(d.name): \(n) entr\(n == 1 ? "y" : "ies")\n"
        }
    }
}
