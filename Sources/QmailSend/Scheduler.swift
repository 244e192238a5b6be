// qmail-send's scheduling, apart from its file descriptors, files and
// signals: which recipient is tried when, on which spawn slot, what a
// delivery report means for the message, when a message is finished. It is
// a value fed with events (a message is in the queue, a spawn reported, time
// passed, ALRM) that answers with actions for the shell in Send.swift to
// carry out (start a delivery, mark a recipient done, log a line, ...).
//
// Actions whose outcome matters come back as events, and the shell carries
// out the actions answering them before the rest of the list:
//   .recordFailure      -> .failureRecorded     (bounce/N appended and fsync'd?)
//   .removeChannelFile  -> .channelFileRemoved  (local/N or remote/N unlinked?)
//   .finish             -> .finished            (bounce sent, mess and info gone?)
// A step that failed is tried again: the recipient on its next try, the
// finishing 60 seconds later.

import QmailCore
import QmailQueue

/// One value per delivery channel.
public struct PerChannel<Value> {
    public var local: Value
    public var remote: Value

    public init(local: Value, remote: Value) { self.local = local; self.remote = remote }
    public init(_ both: Value) { self.init(local: both, remote: both) }

    public subscript(c: DeliveryChannel) -> Value {
        get { c == .local ? local : remote }
        // In place: appending to or removing from an array held here copies nothing.
        _modify { if c == .local { yield &local } else { yield &remote } }
    }
}

extension PerChannel: Equatable where Value: Equatable {}

/// A message as it stands in the queue: info/N and what is left of its channel files.
public struct QueuedMessage: Equatable {
    public let id: Int
    /// info/N's modification time: the message's age for the retry schedule and queuelifetime.
    public let birth: Int
    public let sender: [UInt8]
    /// The recipients not yet done per channel; nil when the channel has no file.
    public let recipients: PerChannel<[ChannelRecipient]?>

    public init(id: Int, birth: Int, sender: [UInt8], recipients: PerChannel<[ChannelRecipient]?>) {
        self.id = id
        self.birth = birth
        self.sender = sender
        self.recipients = PerChannel(local: recipients.local.map { $0.filter { !$0.done } },
                                     remote: recipients.remote.map { $0.filter { !$0.done } })
    }
}

/// One delivery handed to a spawn.
public struct Delivery: Equatable {
    /// The number in the log's "starting delivery N".
    public let id: Int
    public let channel: DeliveryChannel
    /// The spawn's slot: the first byte of the command and of its report.
    public let slot: Int
    public let message: Int
    /// Where the recipient's T is, in the channel file.
    public let offset: Int
    /// The envelope sender for this recipient (after VERP).
    public let sender: [UInt8]
    public let recipient: [UInt8]

    /// The spawn command: slot byte, "S/N", sender, recipient, each NUL-terminated.
    public var command: [UInt8] {
        var cmd: [UInt8] = [UInt8(slot)]
        cmd += Array("\(message % QueueLayout.split)/\(message)".utf8) + [0]
        cmd += sender + [0]
        cmd += recipient + [0]
        return cmd
    }
}

public enum SchedulerEvent: Equatable {
    /// A message split from todo/N, or resumed from info/N at start.
    case arrived(QueuedMessage)
    /// A spawn's report for a slot: 'K', 'Z' or 'D' and the text.
    case report(DeliveryChannel, slot: Int, report: [UInt8])
    case failureRecorded(DeliveryChannel, message: Int, offset: Int, ok: Bool)
    case channelFileRemoved(DeliveryChannel, message: Int, ok: Bool)
    case finished(message: Int, ok: Bool)
    /// How many deliveries a spawn can run at once (its first byte).
    case spawnLimit(DeliveryChannel, Int)
    /// concurrencylocal and concurrencyremote, at start and after HUP.
    case concurrency(PerChannel<Int>)
    /// ALRM: everything waiting for its next try is due now.
    case flush
    /// Time passed: finish what is due, start what is due.
    case tick
}

public enum SchedulerAction: Equatable {
    case log(String)
    /// Write `command` to the channel's spawn.
    case deliver(Delivery)
    /// Overwrite the recipient's T with D in the channel file.
    case markDone(DeliveryChannel, message: Int, offset: Int)
    /// Append a bounce record to bounce/N and fsync it; answer `.failureRecorded`.
    case recordFailure(DeliveryChannel, message: Int, offset: Int, recipient: [UInt8], report: [UInt8])
    /// Unlink local/N or remote/N; answer `.channelFileRemoved`.
    case removeChannelFile(DeliveryChannel, message: Int)
    /// Send bounce/N if any, remove mess/N and intd/N, then info/N; answer `.finished`.
    case finish(message: Int, sender: [UInt8])
}

public struct Scheduler {
    /// How long a finishing step that failed waits before it is tried again.
    public static let finishRetry = 60

    /// A message's work on one channel, as the scans over every message
    /// see it: no arrays, so that they copy and count no references.
    struct Job {
        /// Recipients not yet done.
        var left = 0
        /// Recipients of the current pass not yet started.
        var toStart = 0
        var inFlight = 0
        /// A pass is under way: opened when due, closed when its last delivery reports.
        var open = false
        /// Opened after queuelifetime: deferrals become failures.
        var dying = false
        var nextTry = 0
        var hasFile = false
    }

    struct Message {
        let id: Int
        let birth: Int
        var jobs: PerChannel<Job>
        /// When finishing failed: try again at this time.
        var finishAt: Int?
    }

    /// A message's sender and recipients, kept apart from Message (see Job).
    struct Lists {
        let sender: [UInt8]
        /// Recipients not yet done, in file order (Job.left counts them).
        var recipients: PerChannel<[ChannelRecipient]>
        /// Offsets of the current pass not yet started, last to start
        /// first (Job.toStart counts them).
        var pass: PerChannel<[Int]>
    }

    /// The jobs waiting for their next try on one channel, soonest first,
    /// so that no event looks at every message. A job's entry goes stale
    /// when its pass opens or its next try moves; stale entries are
    /// dropped when they come to the top (see `dropStale`).
    struct TryQueue {
        struct Entry: Comparable {
            let at: Int
            let id: Int
            static func < (a: Entry, b: Entry) -> Bool { (a.at, a.id) < (b.at, b.id) }
        }
        private var heap: [Entry] = []

        var top: Entry? { heap.first }
        var count: Int { heap.count }

        mutating func push(_ e: Entry) {
            heap.append(e)
            var i = heap.count - 1
            while i > 0 {
                let parent = (i - 1) / 2
                guard heap[i] < heap[parent] else { break }
                heap.swapAt(i, parent)
                i = parent
            }
        }

        @discardableResult
        mutating func pop() -> Entry? {
            guard !heap.isEmpty else { return nil }
            heap.swapAt(0, heap.count - 1)
            let e = heap.removeLast()
            var i = 0
            while true {
                var least = i
                for child in [2 * i + 1, 2 * i + 2] where child < heap.count && heap[child] < heap[least] { least = child }
                if least == i { break }
                heap.swapAt(i, least)
                i = least
            }
            return e
        }
    }

    /// A spawn and the deliveries it runs.
    public struct ChannelState: Equatable {
        /// The configured concurrency, lowered to the spawn's limit.
        public private(set) var concurrency: Int
        public private(set) var spawnLimit = SpawnServer.maxSlots
        /// Deliveries running, by slot.
        var slots: [Delivery?] = []
        public private(set) var used = 0

        init(concurrency: Int) { self.concurrency = concurrency }

        mutating func apply(concurrency c: Int) {
            concurrency = min(c, spawnLimit)
            while slots.count < concurrency { slots.append(nil) }
        }

        mutating func setSpawnLimit(_ n: Int) {
            spawnLimit = n
            apply(concurrency: concurrency)
        }

        var free: Bool { used < concurrency }

        mutating func occupy(_ d: Delivery) {
            slots[d.slot] = d
            used += 1
        }

        /// The delivery running on `slot`, if any.
        func running(_ slot: Int) -> Delivery? { slot < slots.count ? slots[slot] : nil }

        mutating func release(_ slot: Int) {
            slots[slot] = nil
            used -= 1
        }
    }

    /// queuelifetime in seconds.
    public let lifetime: Int
    public private(set) var channels: PerChannel<ChannelState>
    var messages: [Int: Message] = [:]
    var lists: [Int: Lists] = [:]
    /// Per channel: the jobs waiting for a try (not open, recipients left).
    var waiting = PerChannel(TryQueue())
    /// Per channel: the open passes with recipients not yet started.
    var starting = PerChannel<[Int]>([])
    /// The messages whose finishing failed (finishAt set).
    var finishing: Set<Int> = []
    var nextDelivery = 1

    public init(lifetime: Int, concurrency: PerChannel<Int> = PerChannel(local: 10, remote: 20)) {
        self.lifetime = lifetime
        channels = PerChannel(ChannelState(concurrency: 0))
        for c in DeliveryChannel.allCases { channels[c].apply(concurrency: concurrency[c]) }
    }

    /// True while the message is held (from arrival until it is finished).
    public func holds(_ id: Int) -> Bool { messages[id] != nil }

    public var messageCount: Int { messages.count }

    /// True while a delivery of the message runs on channel `c`.
    public func delivering(_ id: Int, on c: DeliveryChannel) -> Bool { (messages[id]?.jobs[c].inFlight ?? 0) > 0 }

    /// Deliveries running on both channels.
    public var running: Int { channels.local.used + channels.remote.used }

    public var status: String {
        SendLog.status(local: channels.local.used, localMax: channels.local.concurrency,
                       remote: channels.remote.used, remoteMax: channels.remote.concurrency)
    }

    public mutating func handle(_ event: SchedulerEvent, now: Int) -> [SchedulerAction] {
        var out: [SchedulerAction] = []
        switch event {
        case .arrived(let q):
            arrive(q, &out)
        case .report(let c, let slot, let report):
            self.report(c, slot: slot, report, now: now, &out)
        case .failureRecorded(let c, let id, let offset, let ok):
            guard messages[id] != nil else { break }
            if ok { markDone(c, id, offset, &out) }
            afterReport(c, id, now: now, &out)
        case .channelFileRemoved(let c, let id, let ok):
            guard messages[id] != nil else { break }
            if ok {
                messages[id]!.jobs[c].hasFile = false
                finishIfDone(id, &out)
            } else {
                retryFinish(id, at: now + Self.finishRetry)
            }
        case .finished(let id, let ok):
            guard messages[id] != nil else { break }
            if ok {
                out.append(.log(SendLog.endMessage(id)))
                messages[id] = nil
                lists[id] = nil
                finishing.remove(id)
            } else {
                retryFinish(id, at: now + Self.finishRetry)
            }
        case .spawnLimit(let c, let n):
            channels[c].setSpawnLimit(n)
        case .concurrency(let n):
            for c in DeliveryChannel.allCases { channels[c].apply(concurrency: n[c]) }
        case .flush:
            for id in messages.keys {
                for c in DeliveryChannel.allCases where !messages[id]!.jobs[c].open {
                    messages[id]!.jobs[c].nextTry = 0
                    wait(c, id)
                }
            }
            for id in finishing { messages[id]!.finishAt = 0 }
        case .tick:
            finishDue(now, &out)
            startDeliveries(now, &out)
        }
        for c in DeliveryChannel.allCases { dropStale(c) }
        return out
    }

    /// Seconds until the scheduler has something to do, at most `limit`.
    /// A channel without a free slot has nothing to do until a report
    /// frees one, however many of its jobs are due.
    public func secondsUntilDue(now: Int, limit: Int) -> Int {
        var t = limit
        for id in finishing { if let f = messages[id]?.finishAt { t = min(t, max(f - now, 0)) } }
        for c in DeliveryChannel.allCases where channels[c].free {
            if !starting[c].isEmpty { t = 0 }
            if let next = waiting[c].top { t = min(t, max(next.at - now, 0)) }
        }
        return t
    }

    /// Queues the job of message `id` on channel `c` for its next try, if it waits for one.
    mutating func wait(_ c: DeliveryChannel, _ id: Int) {
        let j = messages[id]!.jobs[c]
        if !j.open && j.left > 0 { waiting[c].push(TryQueue.Entry(at: j.nextTry, id: id)) }
    }

    /// True when `e` still stands for a job waiting for its try at `e.at`.
    func current(_ c: DeliveryChannel, _ e: TryQueue.Entry) -> Bool {
        guard let j = messages[e.id]?.jobs[c] else { return false }
        return !j.open && j.left > 0 && j.nextTry == e.at
    }

    /// Drops the stale entries at the top of a channel's queue.
    mutating func dropStale(_ c: DeliveryChannel) {
        while let e = waiting[c].top, !current(c, e) { waiting[c].pop() }
    }

    mutating func retryFinish(_ id: Int, at: Int) {
        messages[id]!.finishAt = at
        finishing.insert(id)
    }

    // MARK: messages

    mutating func arrive(_ q: QueuedMessage, _ out: inout [SchedulerAction]) {
        var jobs = PerChannel(Job())
        var recipients = PerChannel<[ChannelRecipient]>([])
        for c in DeliveryChannel.allCases {
            guard let r = q.recipients[c] else { continue }
            jobs[c].hasFile = true
            jobs[c].left = r.count
            recipients[c] = r
        }
        messages[q.id] = Message(id: q.id, birth: q.birth, jobs: jobs, finishAt: nil)
        lists[q.id] = Lists(sender: q.sender, recipients: recipients, pass: PerChannel([]))
        for c in DeliveryChannel.allCases { wait(c, q.id) }
        // Restart after every recipient of a channel was done, before its file went.
        for c in DeliveryChannel.allCases where jobs[c].hasFile && jobs[c].left == 0 {
            out.append(.removeChannelFile(c, message: q.id))
        }
        finishIfDone(q.id, &out)
    }

    mutating func finishIfDone(_ id: Int, _ out: inout [SchedulerAction]) {
        let m = messages[id]!
        guard !m.jobs.local.hasFile && !m.jobs.remote.hasFile && m.finishAt == nil else { return }
        out.append(.finish(message: id, sender: lists[id]!.sender))
    }

    /// Finishing steps that failed earlier and are due again.
    mutating func finishDue(_ now: Int, _ out: inout [SchedulerAction]) {
        let due = finishing.filter { (messages[$0]?.finishAt ?? Int.max) <= now }
        for id in due.sorted() {
            messages[id]!.finishAt = nil
            finishing.remove(id)
            let m = messages[id]!
            for c in DeliveryChannel.allCases where m.jobs[c].hasFile && m.jobs[c].left == 0 && !m.jobs[c].open {
                out.append(.removeChannelFile(c, message: id))
            }
            finishIfDone(id, &out)
        }
    }

    // MARK: deliveries

    /// Fills the free slots, oldest schedule first like qmail's priority
    /// queue: the open passes with recipients left to start and the jobs
    /// whose try is due, taken in the order of their try time.
    mutating func startDeliveries(_ now: Int, _ out: inout [SchedulerAction]) {
        for c in DeliveryChannel.allCases {
            while channels[c].free {
                var pick: TryQueue.Entry?
                var open = -1
                for (i, id) in starting[c].enumerated() {
                    let e = TryQueue.Entry(at: messages[id]!.jobs[c].nextTry, id: id)
                    if pick.map({ e < $0 }) ?? true { pick = e; open = i }
                }
                dropStale(c)
                if let e = waiting[c].top, e.at <= now, pick.map({ e < $0 }) ?? true {
                    waiting[c].pop()
                    let id = e.id
                    messages[id]!.jobs[c].open = true
                    messages[id]!.jobs[c].dying = now > messages[id]!.birth + lifetime
                    lists[id]!.pass[c] = lists[id]!.recipients[c].reversed().map { $0.offset }
                    messages[id]!.jobs[c].toStart = messages[id]!.jobs[c].left
                    starting[c].append(id)
                    pick = e
                    open = starting[c].count - 1
                }
                guard let id = pick?.id else { break }
                while messages[id]!.jobs[c].toStart > 0 && channels[c].free {
                    let off = lists[id]!.pass[c].removeLast()
                    messages[id]!.jobs[c].toStart -= 1
                    guard let r = lists[id]!.recipients[c].first(where: { $0.offset == off }) else { continue }
                    start(c, id, r, &out)
                }
                if messages[id]!.jobs[c].toStart == 0 { starting[c].remove(at: open) }
            }
        }
    }

    mutating func start(_ c: DeliveryChannel, _ id: Int, _ r: ChannelRecipient, _ out: inout [SchedulerAction]) {
        guard let slot = channels[c].slots.firstIndex(where: { $0 == nil }) else { return }
        let d = Delivery(id: nextDelivery, channel: c, slot: slot, message: id, offset: r.offset,
                         sender: Self.verp(sender: lists[id]!.sender, recipient: r.address), recipient: r.address)
        nextDelivery += 1
        channels[c].occupy(d)
        messages[id]!.jobs[c].inFlight += 1
        out.append(.log(SendLog.startDelivery(d.id, message: id, channel: c, recipient: r.address)))
        out.append(.log(status))
        out.append(.deliver(d))
    }

    /// qmail's VERP: a sender "pre-@host-@[]" becomes "pre-local=domain@host" for recipient local@domain.
    public static func verp(sender: [UInt8], recipient: [UInt8]) -> [UInt8] {
        let suffix = Array("-@[]".utf8)
        guard sender.hasSuffix(suffix), let ra = recipient.lastIndex(of: Ascii.at) else { return sender }
        let base = Array(sender.dropLast(suffix.count))
        guard let sa = base.lastIndex(of: Ascii.at) else { return sender }
        return Array(base[0..<sa]) + recipient[0..<ra] + [Ascii.equals] + recipient[(ra + 1)...] + base[sa...]
    }

    mutating func report(_ c: DeliveryChannel, slot: Int, _ report: [UInt8], now: Int, _ out: inout [SchedulerAction]) {
        guard let d = channels[c].running(slot), messages[d.message] != nil else {
            out.append(.log("warning: internal error: delivery report out of range"))
            return
        }
        let id = d.message
        channels[c].release(slot)
        messages[id]!.jobs[c].inFlight -= 1
        var rep = report
        if rep.first == UInt8(ascii: "Z") && messages[id]!.jobs[c].dying {
            rep[0] = UInt8(ascii: "D")
            rep += Array("I'm not going to try again; this message has been in the queue too long.\n".utf8)
        }
        let text = Array(rep.dropFirst())
        switch rep.first {
        case UInt8(ascii: "K"):
            out.append(.log(SendLog.delivery(d.id, .success, report: text)))
            markDone(c, id, d.offset, &out)
        case UInt8(ascii: "Z"):
            out.append(.log(SendLog.delivery(d.id, .deferral, report: text)))
        case UInt8(ascii: "D"):
            out.append(.log(SendLog.delivery(d.id, .failure, report: text)))
            // Done only once the failure is in bounce/N: .failureRecorded goes on.
            out.append(.recordFailure(c, message: id, offset: d.offset, recipient: d.recipient, report: text))
            return
        default:
            out.append(.log("delivery \(d.id): report mangled, will defer"))
        }
        afterReport(c, id, now: now, &out)
    }

    mutating func markDone(_ c: DeliveryChannel, _ id: Int, _ offset: Int, _ out: inout [SchedulerAction]) {
        lists[id]!.recipients[c].removeAll { $0.offset == offset }
        messages[id]!.jobs[c].left = lists[id]!.recipients[c].count
        out.append(.markDone(c, message: id, offset: offset))
    }

    /// After a delivery's outcome: the status line, and the end of the pass
    /// when it was the last delivery running.
    mutating func afterReport(_ c: DeliveryChannel, _ id: Int, now: Int, _ out: inout [SchedulerAction]) {
        out.append(.log(status))
        let j = messages[id]!.jobs[c]
        guard j.inFlight == 0 && j.toStart == 0 && j.open else { return }
        messages[id]!.jobs[c].open = false
        if j.left == 0 {
            out.append(.removeChannelFile(c, message: id))
        } else {
            messages[id]!.jobs[c].nextTry = Retry.next(birth: messages[id]!.birth, now: now, channel: c)
            wait(c, id)
        }
    }
}
