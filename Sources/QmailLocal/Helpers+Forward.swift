// forward: queues the message again for the given addresses.
import QmailCore

extension Helpers {
    public static func forward(_ argv: [[UInt8]]) -> Int32 {
        guard let sender = environmentBytes("NEWSENDER") else { return fail(QmailExit.permanent, "forward: fatal: NEWSENDER not set") }
        guard let dtline = environmentBytes("DTLINE") else { return fail(QmailExit.permanent, "forward: fatal: DTLINE not set") }
        switch queue(prefix: dtline, sender: sender, recipients: Array(argv.dropFirst())) {
        case .failure(let f): return fail(f.exitCode, "forward: fatal: \(f.description)")
        case .success(let qp): return fail(0, "forward: qp \(qp)")
        }
    }
}
