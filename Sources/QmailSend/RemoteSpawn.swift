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
            let pid = try ChildProcess.spawn(.init(program: prog, argv: [Array("qmail-remote".utf8), host, sender, recipient],
                                                   fds: [.dup(message, to: 0), .dup(output, to: 1), .dup(output, to: 2)]))
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
        if code == QmailExit.temporary { return SpawnReport("ZUnable to run qmail-remote.\n") }
        if code != 0 { return SpawnReport("DUnable to run qmail-remote.\n") }
        if output.isEmpty { return SpawnReport("Zqmail-remote produced no output.\n") }
        let records = Records.split(output).compactMap { $0 }.filter { !$0.isEmpty }
        guard let first = records.first else { return SpawnReport("Zqmail-remote produced improper output.\n") }
        let K = UInt8(ascii: "K"), Z = UInt8(ascii: "Z"), D = UInt8(ascii: "D")
        // qmail-remote(8): recipient reports 'r' (accepted), 'h' (refused
        // for good), 's' (refused for now), then the message report K/Z/D.
        // One recipient per run here, so: [recipient report] message report.
        if [UInt8(ascii: "r"), UInt8(ascii: "h"), UInt8(ascii: "s")].contains(first[0]) {
            if first[0] == UInt8(ascii: "r"), first.count >= 2, [K, Z, D].contains(first[1]) {
                return legacyReport(records)
            }
            guard let message = records.dropFirst().first(where: { [K, Z, D].contains($0[0]) }) else {
                return SpawnReport("Zqmail-remote produced improper output.\n")
            }
            // The recipient's status is the message's, unless the recipient
            // itself was refused: 'h' is permanent, 's' temporary.
            var letter = message[0]
            if first[0] == UInt8(ascii: "h") { letter = D }
            if first[0] == UInt8(ascii: "s") { letter = Z }
            if first[0] == UInt8(ascii: "r"), message[0] == K { letter = K }
            var text = Array(first.dropFirst())
            // As qmail-rspawn: the message text follows unless the recipient's
            // own status is worse than the message's.
            let rank: (UInt8) -> Int = { $0 == K ? 1 : ($0 == Z ? 0 : -1) }
            if rank(message[0]) <= rank(letter) { text += message.dropFirst() }
            return SpawnReport([letter] + text)
        }
        guard [K, Z, D].contains(first[0]) else { return SpawnReport("Zqmail-remote produced improper output.\n") }
        // A message report alone: the failure came before any RCPT; a bare K
        // without an accepted recipient cannot be.
        if first[0] == K { return SpawnReport("Zqmail-remote produced improper output.\n") }
        return SpawnReport(first)
    }

    /// Reports whose recipient record carries its own status letter ("rK...",
    /// "rD..."), as some qmail-remote stand-ins write them.
    static func legacyReport(_ records: [[UInt8]]) -> SpawnReport {
        let letters: Set<UInt8> = [UInt8(ascii: "K"), UInt8(ascii: "Z"), UInt8(ascii: "D")]
        let rr = Array(records[0].dropFirst())
        if let k = rr.first, letters.contains(k), k != UInt8(ascii: "K") { return SpawnReport(rr) }
        guard let m = records.dropFirst().first(where: { letters.contains($0[0]) }) else {
            return SpawnReport("Zqmail-remote produced improper output.\n")
        }
        return SpawnReport(m)
    }
}

public enum RemoteSpawnMain {
    public static func main() -> Int32 {
        let home = QmailHome.current()
        guard chdir(home.path) == 0 else { return QmailExit.temporary }
        return SpawnServer.main(driver: RemoteSpawn(home: home), messageDirectory: home.queue + "/mess")
    }
}
