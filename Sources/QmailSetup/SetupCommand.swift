// Argument handling for qmail-setup.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum SetupCommand {
    static let usage = "usage: qmail-setup [--single-user] [--owner USER] [--link] [--sendmail [--aliases FILE]] [--programs DIR] [--man DIR] HOME FQDN"

    public static func main(_ argv: [String]) -> Int32 {
        var single = geteuid() != 0
        var programs: String? = nil
        var sendmail = false
        var link = false
        var owner: (uid_t, gid_t)? = nil
        var aliases = "/etc/aliases"
        var man: String? = nil
        var rest: [String] = []
        var i = 1
        while i < argv.count {
            let a = argv[i]
            switch a {
            case "--single-user", "-s": single = true
            case "--owner":
                i += 1
                guard i < argv.count else { Sys.warn(usage); return QmailExit.permanent }
                guard let pw = getpwnam(argv[i]) else { Sys.warn("qmail-setup: fatal: no such user: \(argv[i])"); return QmailExit.permanent }
                owner = (pw.pointee.pw_uid, pw.pointee.pw_gid)
                single = true
            case "--sendmail": sendmail = true
            case "--link": link = true
            case "--aliases":
                i += 1
                guard i < argv.count else { Sys.warn(usage); return QmailExit.permanent }
                aliases = argv[i]
            case "--programs":
                i += 1
                guard i < argv.count else { Sys.warn(usage); return QmailExit.permanent }
                programs = argv[i]
            case "--man":
                i += 1
                guard i < argv.count else { Sys.warn(usage); return QmailExit.permanent }
                man = argv[i]
            case "-h", "--help":
                print(usage)
                return 0
            default:
                if a.hasPrefix("-") { Sys.warn("qmail-setup: unknown option \(a)\n\(usage)"); return QmailExit.permanent }
                rest.append(a)
            }
            i += 1
        }
        guard rest.count == 2 else { Sys.warn(usage); return QmailExit.permanent }
        var home = rest[0]
        if !home.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: 4096)
            guard getcwd(&buf, buf.count) != nil else { Sys.warn("qmail-setup: cannot find the current directory"); return QmailExit.temporary }
            home = String(cString: buf) + "/" + home
        }
        while home.count > 1 && home.hasSuffix("/") { home.removeLast() }
        let dir = programs ?? selfDirectory() ?? "."
        var opts = SetupOptions(home: home, fqdn: rest[1], singleUser: single, programDirectory: dir)
        opts.sendmail = sendmail
        opts.link = link
        opts.owner = owner.map { (uid: $0.0, gid: $0.1) }
        opts.aliasesFile = aliases
        opts.manDirectory = man ?? defaultManDirectory(dir)
        do {
            try Setup(opts, log: { print("qmail-setup: \($0)") }).run()
            return 0
        } catch let e as SetupError {
            Sys.warn("qmail-setup: fatal: \(e)")
            return QmailExit.permanent
        } catch {
            Sys.warn("qmail-setup: fatal: \(error)")
            return QmailExit.temporary
        }
    }

    /// docs/man of the source tree the programs were built in: the parent of
    /// `.build` (`ROOT/.build/<triple>/<config>` or `ROOT/.build/<config>`).
    static func defaultManDirectory(_ programs: String) -> String? {
        let parts = programs.split(separator: "/", omittingEmptySubsequences: false)
        var root: String? = nil
        if let i = parts.firstIndex(of: ".build") {
            root = parts[..<i].joined(separator: "/")
        }
        let d = (root ?? programs + "/../..") + "/docs/man"
        return Sys.isDirectory(d) ? d : nil
    }

    static func selfDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return FileIO.directoryOf(exe)
    }
}
