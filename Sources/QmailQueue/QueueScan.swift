// Reading the queue for reports (qmail-qread, qmail-qstat). Read-only: it
// never changes a file, and tolerates files that vanish while it looks,
// since qmail-send keeps working underneath.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct QueuedRecipient: Equatable {
    /// nil while the message is still in todo/ (not yet given a channel).
    public let channel: DeliveryChannel?
    public let address: [UInt8]
    public let done: Bool
}

public struct ScannedMessage {
    public let id: Int
    public let size: Int
    public let time: Int
    public let sender: [UInt8]?
    public let bouncing: Bool
    /// True when qmail-send has not yet preprocessed it (only todo/ exists).
    public let unprocessed: Bool
    public let recipients: [QueuedRecipient]
}

public struct QueueScan {
    public let layout: QueueLayout

    public init(root: String) { layout = QueueLayout(root: root) }

    /// Numbers of the files in a split directory (mess, info, local, remote).
    public func ids(inSplit name: String) throws -> [Int] {
        var out: [Int] = []
        for i in 0..<QueueLayout.split {
            let dir = "\(layout.root)/\(name)/\(i)"
            guard let names = try? Sys.listDirectory(dir) else {
                if !Sys.isDirectory(dir) { throw SysError("opendir", path: dir, errno: ENOENT) }
                throw SysError("opendir", path: dir, errno: EACCES)
            }
            out += names.compactMap { Decimal.parse(Array($0.utf8)) }
        }
        return out.sorted()
    }

    public func ids(inFlat name: String) throws -> [Int] {
        try Sys.listDirectory("\(layout.root)/\(name)").compactMap { Decimal.parse(Array($0.utf8)) }.sorted()
    }

    /// NUL-separated fields of a queue file; nil when it vanished.
    static func fields(_ path: String) -> [[UInt8]]? {
        guard let data = try? FileIO.read(path) else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: true).map(Array.init)
    }

    public func message(_ id: Int) -> ScannedMessage? {
        guard let st = try? Sys.stat(layout.mess(id)) else { return nil }
        var recips: [QueuedRecipient] = []
        var sender: [UInt8]?
        var unprocessed = false
        if let info = QueueScan.fields(layout.info(id)) {
            sender = info.first { $0.first == UInt8(ascii: "F") }.map { Array($0.dropFirst()) }
            for (path, ch) in [(layout.local(id), DeliveryChannel.local), (layout.remote(id), .remote)] {
                for f in QueueScan.fields(path) ?? [] where f.first == UInt8(ascii: "T") || f.first == UInt8(ascii: "D") {
                    recips.append(QueuedRecipient(channel: ch, address: Array(f.dropFirst()), done: f.first == UInt8(ascii: "D")))
                }
            }
        } else if let todo = QueueScan.fields(layout.todo(id)) {
            unprocessed = true
            for f in todo {
                if f.first == UInt8(ascii: "F") { sender = Array(f.dropFirst()) }
                if f.first == UInt8(ascii: "T") { recips.append(QueuedRecipient(channel: nil, address: Array(f.dropFirst()), done: false)) }
            }
        } else {
            return nil
        }
        return ScannedMessage(id: id, size: Int(st.st_size), time: Int(st.st_mtim.tv_sec), sender: sender,
                             bouncing: Sys.exists(layout.bounce(id)), unprocessed: unprocessed, recipients: recips)
    }

    /// Every message that has an envelope (info/ or todo/), oldest id first.
    public func messages() throws -> [ScannedMessage] {
        let ids = Set(try self.ids(inSplit: "info")).union(try self.ids(inFlat: "todo"))
        return ids.sorted().compactMap { message($0) }
    }
}
