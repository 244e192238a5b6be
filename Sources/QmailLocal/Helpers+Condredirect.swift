// condredirect: forwards the message when a program says so (exit 0).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension Helpers {
    public static func condredirect(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 3 else {
            return fail(QmailExit.permanent, "condredirect: usage: condredirect newaddress program [ arg ... ]")
        }
        guard let c = runChild(Array(argv[2...]), prog: "condredirect") else { return QmailExit.temporary }
        if c == QmailExit.temporary { return fail(QmailExit.temporary, "condredirect: fatal: temporary child error") }
        if c != 0 { return 0 }
        if !rewindInput() { return fail(QmailExit.temporary, "condredirect: fatal: unable to rewind: \(Sys.strerror(errno))") }
        guard let sender = environmentBytes("SENDER") else { return fail(QmailExit.permanent, "condredirect: fatal: SENDER not set") }
        guard let dtline = environmentBytes("DTLINE") else { return fail(QmailExit.permanent, "condredirect: fatal: DTLINE not set") }
        switch queue(prefix: dtline, sender: sender, recipients: [argv[1]]) {
        case .failure(let f): return fail(f.exitCode, "condredirect: fatal: \(f.description)")
        case .success(let qp): return fail(99, "condredirect: qp \(qp)")
        }
    }
}
