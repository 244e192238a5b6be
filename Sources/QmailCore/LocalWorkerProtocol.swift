// The records from qmail-lspawn to its delivery workers (qmail-local -W;
// see LocalWorker in QmailLocal and DeliveryWorkers in QmailSend): one per
// delivery, qmail-local's eight operands (user homedir local dash ext
// domain sender aliasempty), each ending in NUL, with three descriptors
// attached: the message, the report pipe (the delivery's fds 1 and 2) and
// the status pipe. Nothing comes back on the socket: the process that runs
// the delivery (one of the worker's runners, see DeliveryRunner) writes its
// exit code, one byte, to the status pipe when it is done; a status pipe
// closed without that byte means the delivery died (or never started) and
// is a temporary failure. So the end of a delivery is known from the
// delivery itself, whatever becomes of its worker.
public enum LocalWorkerProtocol {
    /// qmail-local's argument for worker mode.
    public static let flag = Array("-W".utf8)
    public static let operandCount = 8

    public static func request(operands: [[UInt8]]) -> [UInt8] {
        precondition(operands.count == operandCount)
        return operands.flatMap { $0 + [0] }
    }

    public static func parse(_ b: [UInt8]) -> [[UInt8]]? {
        guard b.last == 0 else { return nil }
        let ops = b.dropLast().split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
        return ops.count == operandCount ? ops : nil
    }
}
