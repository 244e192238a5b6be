// The layout of qmail's queue directory, and the names of message files.
//
//   pid/      qmail-queue's scratch files, named pid.time.seq
//   mess/S/N  message bodies, S = N % split
//   intd/N    envelopes being written
//   todo/N    envelopes ready for qmail-send
//   info/S/N  sender (written by qmail-send)
//   local/S/N, remote/S/N  recipients still to deliver
//   bounce/N  bounce texts being collected
//   lock/     sendmutex, tcpto, trigger (fifo)

public struct QueueLayout: Sendable {
    /// qmail's conf-split: mess, info, local and remote have this many subdirectories.
    public static let split = 23

    public let root: String

    public init(root: String) {
        self.root = root
    }

    public static func split(_ n: Int) -> Int { n % split }

    public func mess(_ n: Int) -> String { "\(root)/mess/\(n % Self.split)/\(n)" }
    public func info(_ n: Int) -> String { "\(root)/info/\(n % Self.split)/\(n)" }
    public func local(_ n: Int) -> String { "\(root)/local/\(n % Self.split)/\(n)" }
    public func remote(_ n: Int) -> String { "\(root)/remote/\(n % Self.split)/\(n)" }
    public func todo(_ n: Int) -> String { "\(root)/todo/\(n)" }
    public func intd(_ n: Int) -> String { "\(root)/intd/\(n)" }
    public func bounce(_ n: Int) -> String { "\(root)/bounce/\(n)" }
    public var trigger: String { "\(root)/lock/trigger" }
    public var sendmutex: String { "\(root)/lock/sendmutex" }
    public var tcpto: String { "\(root)/lock/tcpto" }

    /// Directories with split subdirectories.
    public static let splitDirectories = ["mess", "info", "local", "remote"]
    /// Every directory of the queue, parents first.
    public static let directories = ["pid", "intd", "todo", "bounce", "mess", "info", "local", "remote", "lock"]
}
