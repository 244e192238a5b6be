// qmail-rspawn's half of the spawn skeleton: runs
//   HOME/bin/qmail-remote host sender recipient
// with the message on stdin and turns its recipient and message reports
// (qmail-remote(8): each report NUL-terminated; "r" + K/Z/D for a
// recipient, then K/Z/D for the message) into one report.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct RemoteSpawn: SpawnDriver {
    public let home: QmailHome

    public init(home: QmailHome) { self.home = home }

    public func start(message: Int32, output: Int32, sender: [UInt8], recipient: [UInt8]) -> Result<pid_t, SpawnReport> {
        guard let at = recipient.lastIndex(of: Ascii.at) else {
            return .failure(SpawnReport("DSorry, address must include host name. (#5.1.3)\n"))
        }
        let host = Array(recipient[(at + 1)...])
        let prog = home.bin("qmail-remote")
        if access(prog, X_OK) != 0 && errno == ENOENT {
            return .failure(SpawnReport("ZSorry, qmail-remote is not installed. (#4.3.0)\n"))
        }
        do {
            let pid = try ProcessKit.spawn(path: prog, argv: [Array("qmail-remote".utf8), host, sender, recipient],
                                           fds: [(message, 0), (output, 1), (output, 2)],
                                           execFailed: { _ in 111 })
            return .success(pid)
        } catch {
            return .failure(SpawnReport("ZUnable to fork qmail-remote. (#4.3.0)\n"))
        }
    }

    public func report(status: ChildStatus, output: [UInt8]) -> SpawnReport {
        Self.report(status: status, output: output)
    }

    public static func report(status: ChildStatus, output: [UInt8]) -> SpawnReport {
        guard case .exited(let code) = status else { return SpawnReport("Zqmail-remote crashed.\n") }
        if code == 111 { return SpawnReport("ZUnable to run qmail-remote.\n") }
        if code != 0 { return SpawnReport("DUnable to run qmail-remote.\n") }
        if output.isEmpty { return SpawnReport("Zqmail-remote produced no output.\n") }
        var recipientReport: [UInt8]? = nil
        var messageReport: [UInt8]? = nil
        for rec in Records.split(output) {
            guard let r = rec, let k = r.first else { continue }
            if k == UInt8(ascii: "r") {
                if recipientReport == nil, r.count >= 2 { recipientReport = Array(r.dropFirst()) }
            } else if k == UInt8(ascii: "K") || k == UInt8(ascii: "Z") || k == UInt8(ascii: "D") {
                messageReport = r
            }
        }
        let letters: Set<UInt8> = [UInt8(ascii: "K"), UInt8(ascii: "Z"), UInt8(ascii: "D")]
        if let rr = recipientReport, let k = rr.first, letters.contains(k), k != UInt8(ascii: "K") {
            return SpawnReport(rr)
        }
        guard let m = messageReport else { return SpawnReport("Zqmail-remote produced improper output.\n") }
        if recipientReport == nil && m.first == UInt8(ascii: "K") {
            return SpawnReport("Zqmail-remote produced improper output.\n")
        }
        return SpawnReport(m)
    }
}

public enum RemoteSpawnMain {
    public static func main() -> Int32 {
        let home = QmailHome.current()
        guard chdir(home.path) == 0 else { return 111 }
        return Spawn.main(driver: RemoteSpawn(home: home), messageDirectory: home.queue + "/mess")
    }
}
