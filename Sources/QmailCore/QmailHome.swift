// Where the qmail home is. Default /var/qmail, or QMAIL_HOME; but a program
// running with raised privilege (setuid/setgid) never takes a path from its
// caller's environment: it derives its home from its own executable, and only
// when that executable sits in a root-owned tree nobody else can write.
#if canImport(Glibc)
import Glibc
#endif

public struct QmailHome: Sendable {
    public static let defaultPath = "/var/qmail"

    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var control: String { path + "/control" }
    public var queue: String { path + "/queue" }
    public var bin: String { path + "/bin" }
    public var users: String { path + "/users" }
    public var alias: String { path + "/alias" }

    public func bin(_ program: String) -> String { "\(path)/bin/\(program)" }
    public func control(_ name: String) -> String { "\(path)/control/\(name)" }

    /// True when this process runs with privileges its caller does not have.
    public static var isPrivileged: Bool {
        getuid() != geteuid() || getgid() != getegid()
    }

    /// The home for this process, following the rules above.
    public static func current() -> QmailHome {
        if isPrivileged {
            return QmailHome(path: trustedHomeFromExecutable() ?? defaultPath)
        }
        if let env = Sys.getenv("QMAIL_HOME"), !env.isEmpty {
            return QmailHome(path: env)
        }
        if let fromExe = homeFromExecutable(), Sys.isDirectory(fromExe + "/control") {
            return QmailHome(path: fromExe)
        }
        return QmailHome(path: defaultPath)
    }

    /// HOME when this program runs as HOME/bin/NAME.
    static func homeFromExecutable() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let binDir = FileIO.directoryOf(exe)
        guard FileIO.baseName(binDir) == "bin" else { return nil }
        let home = FileIO.directoryOf(binDir)
        return home.isEmpty ? nil : home
    }

    /// The executable's home, accepted only if it and every parent up to /
    /// is owned by root and writable by nobody else (a sticky directory such
    /// as /tmp is accepted: others cannot rename the root-owned entry in it).
    static func trustedHomeFromExecutable() -> String? {
        guard let home = homeFromExecutable() else { return nil }
        var dir = home + "/bin"
        while true {
            guard let st = try? Sys.stat(dir) else { return nil }
            if st.st_uid != 0 { return nil }
            if (st.st_mode & 0o022) != 0 && (st.st_mode & S_ISVTX) == 0 { return nil }
            if dir == "/" { break }
            dir = FileIO.directoryOf(dir)
        }
        return home
    }
}
