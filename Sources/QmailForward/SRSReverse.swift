// srsreverse: the delivery end of SRS. The SRS domain's mail goes (through
// virtualdomains) to a .qmail-default holding "|srsreverse"; qmail-local
// gives the SRS local part in DEFAULT. qmail-srs verifies it and names the
// address it stands for (the original sender for SRS0, the first
// forwarder's SRS0 address for SRS1), and the message is queued again for
// that address, with the same envelope sender (usually the null sender of
// a bounce) and our Delivered-To line on top.
import QmailCore

public enum SRSReverse {
    public static func main(_ argv: [String]) -> Int32 {
        runMain("srsreverse") {
            guard let local = env("DEFAULT"), !local.isEmpty else {
                throw ForwardFatal.permanent("DEFAULT not set: run me from a .qmail-default file")
            }
            let home = QmailHome.current()
            let target: [UInt8]
            switch SRSHelper.call(home, "reverse", local) {
            case .success(let t): target = t
            case .failure(let f):
                if f.isTemporary { throw ForwardFatal.temporary(f.description) }
                throw ForwardFatal.permanent("Sorry, \(local.string) is not a valid SRS address. (#5.7.1)", bare: true)
            }
            // A bounce's null sender stays null; any other sender is
            // forwarded like every forward (SRS for a remote target).
            let qp = try Forwarder.queue(dtline: env("DTLINE") ?? [], sender: env("NEWSENDER") ?? [], recipients: [target],
                                         context: "unable to forward message: ")
            Sys.warn("srsreverse: qp \(qp)")
            return 0
        }
    }
}
