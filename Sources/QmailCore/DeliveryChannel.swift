// qmail-send's two delivery channels: local (through qmail-lspawn) and
// remote (through qmail-rspawn). The queue keeps a file per channel
// (queue/local, queue/remote) and the logs name the channel in words.

public enum DeliveryChannel: Int, CaseIterable, Sendable {
    /// Raw values index per-channel arrays (qmail-send keeps two of each).
    case local = 0, remote = 1

    /// The word qmail-send's log and qmail-qread print.
    public var name: String { self == .local ? "local" : "remote" }
}
