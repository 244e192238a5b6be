// One log line per login attempt, for the administrator and for fail2ban
// (contrib/fail2ban): "PROGRAM: login RESULT remote=IP user=NAME", RESULT
// one of ok, failed, temporary, crashed, limited (refused unchecked by the
// failed-login limits, LoginLimit.swift).
// The remote address is tcpserver's TCPREMOTEIP; the user name comes from
// the client, so every byte outside printable ASCII (spaces included) is
// shown as '?' and the name is cut, and the line always ends with it: a
// name cannot forge another field or another line.
#if canImport(Glibc)
import Glibc
#endif

public enum LoginLog {
    static let maxUser = 100

    public static func line(program: String, result: String, user: [UInt8], remote: String?) -> [UInt8] {
        let ip = (remote ?? "").utf8.allSatisfy { $0 > 32 && $0 < 127 } ? (remote ?? "") : ""
        let shown = user.prefix(maxUser).map { ($0 > 32 && $0 < 127) ? $0 : UInt8(ascii: "?") }
        return Array("\(program): login \(result) remote=\(ip.isEmpty ? "unknown" : ip) user=".utf8) + shown + [10]
    }

    /// Writes the line to `fd` (the service's log: tcpserver's stderr).
    public static func write(fd: Int32 = 2, program: String, result: String, user: [UInt8]) {
        _ = try? Sys.writeAll(fd, line(program: program, result: result, user: user, remote: Sys.getenv("TCPREMOTEIP")))
    }

    public static func result(_ r: CheckResult) -> String {
        switch r {
        case .ok: return "ok"
        case .rejected: return "failed"
        case .temporary: return "temporary"
        case .limited: return "limited"
        }
    }
}
