// qmail-send: delivers the messages in the queue. Runs as qmails, started
// by qmail-start. Trusts the queue (written by qmail-queue) and its pipes:
// fd 0 log, fd 1/2 commands to / reports from qmail-lspawn, 3/4 the same
// for qmail-rspawn, 5/6 requests to / answers from qmail-clean.
//
// A message's life (each step durable before the next, so that a crash at
// any instant is recovered by redoing the step it interrupted):
//   todo/N (+mess, intd)  --split-->  info/N + local/N + remote/N (fsync'd)
//                         --qmail-clean "todo/N"--> todo and intd gone
//   each recipient: delivered (K) or failed (D: appended to bounce/N and
//   fsync'd first), then its T overwritten with D; deferred (Z) ones wait
//   for the retry schedule; a channel file with nothing left is unlinked
//   all channels done: bounce/N injected and unlinked, qmail-clean
//   "foop/N" removes mess and intd, info/N unlinked: "end msg N".
// At start every todo/N is split afresh (nothing was delivered from it
// yet) and every info/N is resumed from its channel files.
//
// The direct way, for the common message (one local recipient): no split.
// The scheduler gets it from todo/N at once, and todo/N, intd/N and mess/N,
// durable since qmail-queue, stay its record until its delivery succeeds;
// then qmail-clean removes todo/N and intd/N, then mess/N, in one exchange.
// A crash before that splits todo/N afresh and delivers again: the one
// duplicate per delivery in flight that qmail allows. Any other outcome
// (deferral, failure) first writes the split as above, fsync'd, and has
// todo/N removed, so that a message waiting for its retry or bouncing is in
// info/N and local/N as qmail keeps it; so does a message that has waited
// directWait seconds for a slot. At most directMax messages go this way at
// once; the others are split.
//
// The decisions (which recipient when, on which slot, what a report means,
// when a message is finished) are Scheduler's; this file is its shell: the
// todo split, the queue files, the pipes, qmail-clean, signals and the log.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

nonisolated(unsafe) private var sendWakeFd: Int32 = -1
nonisolated(unsafe) private var sendFlagTerm: sig_atomic_t = 0
nonisolated(unsafe) private var sendFlagAlarm: sig_atomic_t = 0
nonisolated(unsafe) private var sendFlagHup: sig_atomic_t = 0

private func sendWake() {
    var b: UInt8 = 0
    let saved = errno
    _ = write(sendWakeFd, &b, 1)
    errno = saved
}

/// The pipes to one spawn: commands out, reports in.
struct SpawnPipe {
    let toSpawn: Int32
    let fromSpawn: Int32
    /// Commands not yet written (the pipe is non-blocking).
    var commands: [UInt8] = []
    var reports = ReportReader()
}

/// Splits a spawn's output into reports: a slot byte, then text up to a NUL.
struct ReportReader {
    /// Longer reports are cut (qmail-send keeps 10000 bytes).
    static let reportMax = 10000
    var partial: [UInt8] = []

    mutating func feed(_ bytes: ArraySlice<UInt8>) -> [(slot: Int, report: [UInt8])] {
        var out: [(slot: Int, report: [UInt8])] = []
        for b in bytes {
            // Overlong reports are cut, keeping the terminating NUL.
            if b != 0 && partial.count >= Self.reportMax { continue }
            partial.append(b)
            // The first byte is the slot number and may itself be 0.
            if b == 0 && partial.count > 1 {
                out.append((Int(partial[0]), Array(partial[1..<(partial.count - 1)])))
                partial = []
            }
        }
        return out
    }
}

/// qmail-send's shell around Scheduler: the spawn pipes, qmail-clean, the
/// queue files, the trigger, signals and the log.
public final class QueueSender {

    /// qmail-send's timers: rescan todo/ even without a trigger, and look
    /// for ossified message files.
    static let sleepTodo = 1500
    static let sleepCleanup = 76431
    /// How many todo entries are split together, their files fsync'd by
    /// one sync thread. Their descriptors stay open until the answer: with
    /// a batch in flight per thread, at most 192, well under the usual
    /// limit of 1024.
    static let todoBatch = 8
    /// The direct way (see the top of this file): how long a message may
    /// wait there for a local slot, and how many may be on it, in
    /// multiples of concurrencylocal.
    static let directWait = 10
    static let directMax = 50

    let home: QmailHome
    let layout = QueueLayout(root: ".")
    var router: Router
    var bounceSettings: Bounce.Settings
    var scheduler: Scheduler
    var pipes = PerChannel(local: SpawnPipe(toSpawn: 1, fromSpawn: 2), remote: SpawnPipe(toSpawn: 3, fromSpawn: 4))
    var todoPending: [Int] = []
    /// The thread that fsyncs the split (nil: the loop fsyncs itself).
    var syncer: SyncThread?
    /// Splits written and handed to the sync thread, by batch number; their
    /// todo/N stay until the answer.
    var syncing: [Int32: [Split]] = [:]
    var syncingIds: Set<Int> = []
    /// Messages on the direct way (see the top of this file): what their
    /// split would write, should they need it.
    var direct: [Int: DirectMessage] = [:]
    /// The direct messages in the order they came (entries of messages
    /// gone since are dropped at the front): the front's time is when the
    /// next one may have waited too long (secondsUntilDirectSplit).
    var directOrder: [(id: Int, since: Int)] = []
    var directOrderStart = 0
    var lastDirectCheck = 0
    /// The direct way's own splits (see writeDirectSplits) are rare: they
    /// are fsync'd by the loop, side by side.
    let fsyncGroup = FsyncGroup(helpers: 3)
    /// Batches whose fsyncs may be under way at once: one per sync thread.
    var batchesInFlight: Int { syncer?.threads ?? 1 }
    var nextBatch: Int32 = 0
    /// Messages with every recipient done, finished together before the
    /// next wait (see finishPending).
    var finishQueue: [(id: Int, sender: [UInt8])] = []
    var nextTodoScan = 0
    var nextCleanup = 0
    var exiting = false

    let log = ByteWriter(fd: 0, capacity: 16384)
    var triggerFd: Int32 = -1

    init(home: QmailHome, router: Router, bounce: Bounce.Settings, scheduler: Scheduler) {
        self.home = home
        self.router = router
        self.bounceSettings = bounce
        self.scheduler = scheduler
    }

    // MARK: logging

    /// One log line, written at once as qmail-send does: a kill -9 right
    /// after an event cannot lose its line.
    func logLine(_ s: String) {
        _ = try? log.put(s)
        _ = try? log.put(byte: Ascii.lf)
        _ = try? log.flush()
    }

    // MARK: entry point

    public static func main() -> Int32 {
        let home = QmailHome.current()
        let log = ByteWriter(fd: 0)
        func alert(_ s: String) -> Int32 {
            _ = try? log.put("alert: cannot start: \(s)\n"); _ = try? log.flush(); return QmailExit.temporary
        }
        guard chdir(home.path) == 0 else { return alert("unable to switch to home directory") }
        let control = Control(directory: "control")
        let router: Router, bounce: Bounce.Settings, lifetime: Int, conc: PerChannel<Int>
        do {
            router = try Router.load(control)
            bounce = try Bounce.Settings.load(control)
            lifetime = try control.number("queuelifetime")
            conc = try Self.readConcurrency(control)
        } catch { return alert("unable to read controls") }
        guard chdir("queue") == 0 else { return alert("unable to switch to queue directory") }
        let lockFd = Glibc.open("lock/sendmutex", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFd >= 0 else { return alert("unable to open lock/sendmutex") }
        guard flock(lockFd, LOCK_EX | LOCK_NB) == 0 else { return alert("qmail-send is already running (lock/sendmutex)") }
        let s = QueueSender(home: QmailHome(path: home.path), router: router, bounce: bounce,
                            scheduler: Scheduler(lifetime: lifetime, concurrency: conc))
        return s.run()
    }

    static func readConcurrency(_ c: Control) throws -> PerChannel<Int> {
        PerChannel(local: min(max(try c.number("concurrencylocal"), 0), SpawnServer.maxSlots),
                   remote: min(max(try c.number("concurrencyremote"), 0), SpawnServer.maxSlots))
    }

    /// qmail-send cannot go on (a pipe to a spawn or to qmail-clean is
    /// gone): the alert to log before exiting 111.
    struct Dying: Error {
        let alert: String
        static let lostSpawn = Dying(alert: "oh no! lost spawn connection! dying...")
        static let lostClean = Dying(alert: "oh no! lost qmail-clean connection! dying...")
    }

    /// Runs until told to exit (SIGTERM) and every delivery has ended;
    /// returns the exit code.
    func run() -> Int32 {
        do { return try loop() } catch {
            logLine("alert: " + error.alert)
            _ = try? log.flush()
            return QmailExit.temporary
        }
    }

    func loop() throws(Dying) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Our pipes must not leak into qmail-queue when we inject a bounce.
        for fd: Int32 in 0...6 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        for c in DeliveryChannel.allCases {
            let fd = pipes[c].toSpawn
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        guard let wake = try? Sys.pipeCloexec() else { return QmailExit.temporary }
        _ = fcntl(wake.read, F_SETFL, O_NONBLOCK)
        _ = fcntl(wake.write, F_SETFL, O_NONBLOCK)
        sendWakeFd = wake.write
        signal(SIGTERM) { _ in sendFlagTerm = 1; sendWake() }
        signal(SIGALRM) { _ in sendFlagAlarm = 1; sendWake() }
        signal(SIGHUP) { _ in sendFlagHup = 1; sendWake() }

        // Each spawn announces how many deliveries it can run at once.
        for c in DeliveryChannel.allCases {
            var b: UInt8 = 0
            var r: Int
            repeat { r = Glibc.read(pipes[c].fromSpawn, &b, 1) } while r < 0 && errno == EINTR
            if r != 1 { throw Dying(alert: "cannot start: hath the daemon spawn no fire?") }
            try perform(.spawnLimit(c, Int(b)))
        }
        openTrigger()
        syncer = SyncThread.start()
        if syncer == nil { logLine("warning: unable to start the fsync thread; splitting todo in the main loop") }
        warnUnsignedCluster()
        try recover()
        logLine(scheduler.status)

        var readBuf = [UInt8](repeating: 0, count: 4096)
        while true {
            if sendFlagTerm != 0 { sendFlagTerm = 0; exiting = true }
            if sendFlagAlarm != 0 { sendFlagAlarm = 0; try perform(.flush) }
            if sendFlagHup != 0 { sendFlagHup = 0; try reread() }
            let now = Sys.now()
            try finishPending()
            if now != lastDirectCheck { lastDirectCheck = now; try splitWaitingDirect(now) }
            if exiting && scheduler.running == 0 && syncing.isEmpty {
                logLine("status: exiting")
                _ = try? log.flush()
                return 0
            }
            if !exiting {
                if now >= nextTodoScan { scanTodo(); nextTodoScan = now + Self.sleepTodo }
                var started = 0
                while !todoPending.isEmpty && syncing.count < batchesInFlight && started < batchesInFlight {
                    let batch = Array(todoPending.prefix(Self.todoBatch))
                    todoPending.removeFirst(batch.count)
                    try processTodo(batch)
                    started += 1
                }
                if now >= nextCleanup { try cleanupOssified(now); nextCleanup = now + Self.sleepCleanup }
                try perform(.tick, now: now)
            }
            try finishPending()
            _ = try? log.flush()

            var pfds: [pollfd] = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            for c in DeliveryChannel.allCases {
                pfds.append(pollfd(fd: pipes[c].fromSpawn, events: Int16(POLLIN), revents: 0))
                pfds.append(pollfd(fd: pipes[c].toSpawn, events: pipes[c].commands.isEmpty ? 0 : Int16(POLLOUT), revents: 0))
            }
            let syncIndex = pfds.count
            if let syncer { pfds.append(pollfd(fd: syncer.fd, events: Int16(POLLIN), revents: 0)) }
            if triggerFd >= 0 { pfds.append(pollfd(fd: triggerFd, events: Int16(POLLIN), revents: 0)) }
            let timeout = !todoPending.isEmpty && syncing.count < batchesInFlight ? 0
                : exiting ? 60
                : scheduler.secondsUntilDue(now: now, limit: secondsUntilDirectSplit(now: now, limit: max(nextTodoScan - now, 0)))
            let r = poll(&pfds, nfds_t(pfds.count), Int32(min(timeout, 3600) * 1000))
            if r < 0 && errno != EINTR { throw Dying(alert: "poll failed") }
            while readBuf.withUnsafeMutableBytes({ Glibc.read(wake.read, $0.baseAddress!, $0.count) }) > 0 {}
            for c in DeliveryChannel.allCases {
                if pfds[1 + 2 * c.rawValue].revents != 0 {
                    let n = readBuf.withUnsafeMutableBytes { Glibc.read(pipes[c].fromSpawn, $0.baseAddress!, $0.count) }
                    if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) { throw Dying.lostSpawn }
                    if n > 0 {
                        for (slot, report) in pipes[c].reports.feed(readBuf[0..<n]) {
                            try perform(.report(c, slot: slot, report: try leaveDirectWay(c, slot: slot, report: report)))
                        }
                    }
                }
                try flushCommands(c)
            }
            if syncer != nil && pfds[syncIndex].revents != 0 { try settleSynced() }
            if triggerFd >= 0, let t = pfds.last, t.revents != 0 {
                while readBuf.withUnsafeMutableBytes({ Glibc.read(triggerFd, $0.baseAddress!, $0.count) }) > 0 {}
                if t.revents & Int16(POLLHUP | POLLERR) != 0 { Sys.close(triggerFd); openTrigger() }
                nextTodoScan = 0
            }
        }
    }

    func reread() throws(Dying) {
        if let r = try? Router.load(Control(directory: home.control)) { router = r }
        else { logLine("alert: unable to reread controls") }
        if let c = try? Self.readConcurrency(Control(directory: home.control)) { try perform(.concurrency(c)) }
        warnUnsignedCluster()
    }

    /// Routing between cluster hosts goes on without control/clustersecret,
    /// but the administrator must hear that its loop markers are forgeable.
    func warnUnsignedCluster() {
        if let w = ClusterSecretCheck.warning(home: home, control: Control(directory: home.control)) {
            logLine("warning: " + w)
        }
    }

    func openTrigger() {
        // Read-write so that the fifo never reports end of file when the last injector closes it.
        triggerFd = Glibc.open("lock/trigger", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if triggerFd < 0 { logLine("warning: unable to open lock/trigger; new mail waits for the next todo scan") }
    }

    // MARK: the scheduler's events and actions

    /// Feeds `event` to the scheduler and carries out its actions in order.
    /// An action whose outcome the scheduler needs is answered at once, and
    /// the actions of that answer run before the rest.
    func perform(_ event: SchedulerEvent, now: Int = Sys.now()) throws(Dying) {
        for action in scheduler.handle(event, now: now) {
            switch action {
            case .log(let line):
                logLine(line)
            case .deliver(let d):
                pipes[d.channel].commands += d.command
                try flushCommands(d.channel)
            case .markDone(let c, let id, let offset):
                // A direct message's success is recorded when todo/N goes (finishPending).
                if direct[id] != nil { direct[id]!.delivered = true } else { markDone(c, id, offset) }
            case .recordFailure(let c, let id, let offset, let recipient, let report):
                let ok = addBounce(id, recipient, report)
                try perform(.failureRecorded(c, message: id, offset: offset, ok: ok))
            case .removeChannelFile(let c, let id):
                let ok = direct[id] != nil || unlinkIfPresent(chanPath(c, id))
                try perform(.channelFileRemoved(c, message: id, ok: ok))
            case .finish(let id, let sender):
                finishQueue.append((id, sender))
            }
        }
    }

    // MARK: recovery and todo

    func listIds(_ dir: String) -> [Int] {
        guard let names = try? Sys.listDirectory(dir) else {
            logLine("warning: unable to scan \(dir), will try again later")
            return []
        }
        return names.compactMap { Decimal.parse(Array($0.utf8)) }
    }

    func scanTodo() {
        let have = Set(todoPending)
        for id in listIds("todo").sorted() where !have.contains(id) { todoPending.append(id) }
    }

    func recover() throws(Dying) {
        scanTodo()
        let todo = Set(todoPending)
        for s in 0..<QueueLayout.split {
            for id in listIds("info/\(s)") where !todo.contains(id) { try load(id) }
        }
    }

    func read(_ path: String) -> [UInt8]?? {
        do { return .some(try FileIO.read(path, limit: 64 << 20)) } catch {
            logLine("warning: unable to read \(path): \(SendLog.safe(String(describing: error)))")
            return nil
        }
    }

    /// Resumes a message from info/N and its channel files.
    func load(_ id: Int) throws(Dying) {
        guard let infoRead = read(layout.info(id)), let info = infoRead, let st = try? Sys.stat(layout.info(id)) else { return }
        var recipients = PerChannel<[ChannelRecipient]?>(nil)
        for c in DeliveryChannel.allCases {
            guard let r = read(chanPath(c, id)) else { return }
            recipients[c] = r.map { Records.channel($0) }
        }
        try perform(.arrived(QueuedMessage(id: id, birth: Int(st.st_mtim.tv_sec), sender: Records.sender(fromInfo: info) ?? [],
                                       recipients: recipients)))
    }

    func chanPath(_ c: DeliveryChannel, _ id: Int) -> String { c == .local ? layout.local(id) : layout.remote(id) }

    func unlinkIfPresent(_ p: String) -> Bool {
        if unlink(p) == 0 || errno == ENOENT { return true }
        logLine("warning: unable to unlink \(p), will try again later")
        return false
    }

    /// Creates `path` with `bytes` and starts writing it out; the open
    /// descriptor is for the fsync that makes it durable. Nil on trouble.
    func createFile(_ path: String, _ bytes: [UInt8]) -> Int32? {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { logLine("warning: unable to create \(path), will try again later"); return nil }
        do { try Sys.writeAll(fd, bytes) } catch {
            Sys.close(fd)
            logLine("warning: trouble writing to \(path), will try again later"); return nil
        }
        // Writing starts now; the sync thread waits for it (Sys.writeOut).
        Sys.startWriteback(fd)
        return fd
    }

    /// One message's split, written and not yet durable.
    struct Split {
        let message: QueuedMessage
        /// info/N first, then the channel files.
        let files: [(path: String, fd: Int32)]
        let infoLine: String
    }

    /// Splits each todo/N into info/N, local/N, remote/N, then has
    /// qmail-clean remove todo/N. The files of the whole batch are written
    /// first and fsync'd together afterwards, by the sync thread while the
    /// loop goes on (settleSynced takes up the batch again): on a
    /// journaling filesystem the first fsync commits them all, instead of
    /// one commit per file. Per message the order of what is durable stays
    /// qmail's: its files are fsync'd before its todo/N goes. Any failure
    /// leaves that message's todo/N, and the next scan redoes its whole split.
    func processTodo(_ ids: [Int]) throws(Dying) {
        var splits: [Split] = []
        for id in ids {
            guard let t = try readTodo(id) else { continue }
            if try deliverDirectly(t) { continue }
            if let sp = writeSplit(t) { splits.append(sp) }
        }
        guard !splits.isEmpty else { return }
        let fds = splits.flatMap { $0.files.map(\.fd) }
        if let syncer, fds.count <= SyncThread.maxFiles {
            let batch = nextBatch
            nextBatch &+= 1
            if (try? syncer.submit(batch, fds)) != nil {
                syncing[batch] = splits
                syncingIds.formUnion(splits.map(\.message.id))
                return
            }
        }
        try settle(splits, synced: fds.map { Glibc.fsync($0) == 0 })
    }

    /// Takes the sync thread's answers and finishes those batches' splits.
    func settleSynced() throws(Dying) {
        guard let syncer else { return }
        let answers: [(batch: Int32, ok: [Bool])]
        do { answers = try syncer.answers() } catch { throw Dying(alert: "lost the fsync thread! dying...") }
        for a in answers {
            guard let splits = syncing.removeValue(forKey: a.batch) else { continue }
            try settle(splits, synced: a.ok)
        }
    }

    /// Finishes a batch's split once its files' fsyncs are done (`synced`:
    /// one flag per file, in order): each message whose files are all
    /// durable loses its todo/N and is scheduled; the others keep todo/N
    /// and are split again at the next scan.
    func settle(_ splits: [Split], synced: [Bool]) throws(Dying) {
        var durable: [Split] = []
        var k = 0
        for sp in splits {
            var ok = true
            for f in sp.files {
                if ok && !(k < synced.count && synced[k]) {
                    logLine("warning: trouble writing to \(f.path), will try again later")
                    ok = false
                }
                k += 1
                Sys.close(f.fd)
            }
            syncingIds.remove(sp.message.id)
            if ok { durable.append(sp) }
        }
        for sp in durable { logLine(sp.infoLine) }
        let cleaned = try cleanRequests(durable.map { "todo/\($0.message.id)" })
        for (sp, ok) in zip(durable, cleaned) where ok { try perform(.arrived(sp.message)) }
    }

    /// A todo/N read and routed, its split not yet written.
    struct Todo {
        let id: Int
        let envelope: TodoEnvelope
        let lists: PerChannel<[[UInt8]]>
        let infoLine: String
    }

    /// Reads and routes todo/N; nil when there is nothing to do with it now.
    func readTodo(_ id: Int) throws(Dying) -> Todo? {
        if scheduler.holds(id) || syncingIds.contains(id) { return nil }
        guard let r = read(layout.todo(id)) else { return nil }
        guard let data = r else { return nil }  // gone: processed already
        guard let env = TodoEnvelope.parse(data) else {
            logLine("warning: unable to parse todo/\(id), leaving it alone")
            return nil
        }
        let mess: stat
        do { mess = try Sys.stat(layout.mess(id)) } catch let e as SysError where e.isNotFound {
            logLine("warning: todo/\(id) without its message file; discarding")
            _ = try cleanRequest("todo/\(id)")
            return nil
        } catch {
            logLine("warning: unable to stat mess/\(id), will try again later")
            return nil
        }
        // Leftovers of a split interrupted by a crash; nothing was delivered from them yet.
        for p in [layout.info(id), layout.local(id), layout.remote(id), layout.bounce(id)] { guard unlinkIfPresent(p) else { return nil } }
        logLine(SendLog.newMessage(id))
        var lists = PerChannel<[[UInt8]]>([])
        for rcpt in env.recipients {
            let (c, addr) = router.route(rcpt)
            lists[c].append(addr)
        }
        return Todo(id: id, envelope: env, lists: lists,
                    infoLine: SendLog.info(id, bytes: Int(mess.st_size), sender: env.sender, qp: env.pid, uid: env.uid))
    }

    /// Writes one message's info and channel files, not yet fsync'd.
    func writeSplit(_ t: Todo) -> Split? {
        let id = t.id
        var files: [(path: String, fd: Int32)] = []
        var recipients = PerChannel<[ChannelRecipient]?>(nil)
        func create(_ path: String, _ bytes: [UInt8]) -> Bool {
            guard let fd = createFile(path, bytes) else {
                for f in files { Sys.close(f.fd) }
                return false
            }
            files.append((path, fd))
            return true
        }
        guard create(layout.info(id), Records.info(sender: t.envelope.sender)) else { return nil }
        for c in DeliveryChannel.allCases where !t.lists[c].isEmpty {
            let bytes = Records.channelFile(t.lists[c])
            guard create(chanPath(c, id), bytes) else { return nil }
            recipients[c] = Records.channel(bytes)
        }
        // The message's age counts from info/N's time, as after a restart (see load).
        var st = Glibc.stat()
        guard fstat(files[0].fd, &st) == 0 else {
            for f in files { Sys.close(f.fd) }
            logLine("warning: unable to stat \(layout.info(id)), will try again later")
            return nil
        }
        let message = QueuedMessage(id: id, birth: Int(st.st_mtim.tv_sec), sender: t.envelope.sender, recipients: recipients)
        return Split(message: message, files: files, infoLine: t.infoLine)
    }

    /// A message on the direct way: what its split would write (info/N,
    /// local/N), when it came, whether its delivery succeeded.
    struct DirectMessage {
        let sender: [UInt8]
        let local: [UInt8]
        let since: Int
        var delivered = false
    }

    /// Hands a message with one local recipient to the scheduler straight
    /// from todo/N (the direct way, at the top of this file); false when the
    /// message must be split.
    func deliverDirectly(_ t: Todo) throws(Dying) -> Bool {
        guard t.lists.remote.isEmpty, t.lists.local.count == 1,
              direct.count < Self.directMax * max(scheduler.channels.local.concurrency, 1) else { return false }
        let bytes = Records.channelFile(t.lists.local)
        let now = Sys.now()
        direct[t.id] = DirectMessage(sender: t.envelope.sender, local: bytes, since: now)
        directOrder.append((t.id, now))
        logLine(t.infoLine)
        try perform(.arrived(QueuedMessage(id: t.id, birth: now, sender: t.envelope.sender,
                                           recipients: PerChannel(local: Records.channel(bytes), remote: nil))))
        return true
    }

    /// Direct messages that have waited directWait seconds for a slot get
    /// their split: a backlog shows in info/ and local/, as in qmail.
    func splitWaitingDirect(_ now: Int) throws(Dying) {
        let due = direct.filter { waitsForSlot($0.key, $0.value) && now - $0.value.since >= Self.directWait }.keys.sorted()
        // In groups, so that the loop waits for one commit at a time.
        let group = 4 * Self.todoBatch
        for start in stride(from: 0, to: due.count, by: group) {
            _ = try writeDirectSplits(Array(due[start..<min(start + group, due.count)]))
        }
    }

    func waitsForSlot(_ id: Int, _ dm: DirectMessage) -> Bool { !dm.delivered && !scheduler.delivering(id, on: .local) }

    /// Seconds until splitWaitingDirect may have work, at most `limit`:
    /// from the oldest direct message, whether it waits or not (its
    /// delivery may outlast directWait), and not before the next second
    /// once this second's check is done.
    func secondsUntilDirectSplit(now: Int, limit: Int) -> Int {
        while directOrderStart < directOrder.count, direct[directOrder[directOrderStart].id] == nil { directOrderStart += 1 }
        if directOrderStart > 1024 && directOrderStart * 2 > directOrder.count {
            directOrder.removeFirst(directOrderStart)
            directOrderStart = 0
        }
        guard directOrderStart < directOrder.count else { return limit }
        let due = directOrder[directOrderStart].since + Self.directWait - now
        return min(limit, max(due, lastDirectCheck == now ? 1 : 0))
    }

    /// Before a report other than success reaches the scheduler, a direct
    /// message gets its split (so that the deferral or the bounce works on
    /// info/N and local/N as for any message). When the split cannot be
    /// written, a failure is deferred: the message stays on todo/N and is
    /// tried again.
    func leaveDirectWay(_ c: DeliveryChannel, slot: Int, report: [UInt8]) throws(Dying) -> [UInt8] {
        guard let d = scheduler.channels[c].running(slot), let dm = direct[d.message], !dm.delivered,
              report.first != UInt8(ascii: "K") else { return report }
        if try writeDirectSplit(d.message) || report.first != UInt8(ascii: "D") { return report }
        return Array("Zqmail-send cannot record this failure in the queue yet; will try again later. ".utf8)
            + report.dropFirst()
    }

    /// Writes a direct message's info/N and local/N, fsync'd, then has
    /// qmail-clean remove todo/N: from then on it is a split message. False
    /// (the message stays direct) when a file cannot be written.
    func writeDirectSplit(_ id: Int) throws(Dying) -> Bool { try writeDirectSplits([id]).isEmpty }

    /// writeDirectSplit for several messages, their files fsync'd together
    /// and their todo/N removed in one qmail-clean exchange. Returns the
    /// messages that stay direct; files written for them are unlinked, so
    /// that nothing but todo/N speaks for them.
    func writeDirectSplits(_ ids: [Int]) throws(Dying) -> [Int] {
        var written: [(id: Int, files: [(path: String, fd: Int32)])] = []
        var failed: [Int] = []
        func drop(_ id: Int, _ files: [(path: String, fd: Int32)]) {
            for f in files { Sys.close(f.fd); _ = unlinkIfPresent(f.path) }
            failed.append(id)
        }
        for id in ids {
            guard let dm = direct[id] else { continue }
            var files: [(path: String, fd: Int32)] = []
            for (path, bytes) in [(layout.info(id), Records.info(sender: dm.sender)), (layout.local(id), dm.local)] {
                guard let fd = createFile(path, bytes) else { break }
                files.append((path, fd))
            }
            if files.count == 2 { written.append((id, files)) } else { drop(id, files) }
        }
        let synced = fsyncGroup.fsync(written.flatMap { $0.files.map(\.fd) })
        var split: [Int] = []
        for (k, w) in written.enumerated() {
            if synced[2 * k] && synced[2 * k + 1] {
                for f in w.files { Sys.close(f.fd) }
                direct[w.id] = nil
                split.append(w.id)
            } else {
                logLine("warning: trouble writing to \(w.files[synced[2 * k] ? 1 : 0].path), will try again later")
                drop(w.id, w.files)
            }
        }
        _ = try cleanRequests(split.map { "todo/\($0)" })
        return failed
    }

    /// Sends one request to qmail-clean; true on '+'.
    func cleanRequest(_ req: String) throws(Dying) -> Bool { try cleanRequests([req])[0] }

    /// Sends requests to qmail-clean all at once, then reads its answers,
    /// one byte each in order; true for each answered '+'.
    func cleanRequests(_ reqs: [String]) throws(Dying) -> [Bool] {
        guard !reqs.isEmpty else { return [] }
        do {
            try Sys.writeAll(5, reqs.flatMap { Array($0.utf8) + [0] })
            var answers = [UInt8](repeating: 0, count: reqs.count)
            var got = 0
            while got < answers.count {
                let r = answers.withUnsafeMutableBytes { Glibc.read(6, $0.baseAddress! + got, $0.count - got) }
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { throw SysError("read") }
                got += r
            }
            return zip(reqs, answers).map { req, b in
                if b == UInt8(ascii: "+") { return true }
                logLine("warning: qmail-clean unable to clean up \(req)")
                return false
            }
        } catch {
            throw Dying.lostClean
        }
    }

    /// Message files with neither info nor todo, untouched for 36 hours:
    /// leftovers of a qmail-queue that died after writing them.
    func cleanupOssified(_ now: Int) throws(Dying) {
        for s in 0..<QueueLayout.split {
            for id in listIds("mess/\(s)") where !scheduler.holds(id) {
                guard let st = try? Sys.stat(layout.mess(id)) else { continue }
                if now <= Int(st.st_atim.tv_sec) + Clean.ossified { continue }
                if Sys.exists(layout.info(id)) || Sys.exists(layout.todo(id)) { continue }
                _ = try cleanRequest("foop/\(id)")
            }
        }
    }

    // MARK: queue files

    func flushCommands(_ c: DeliveryChannel) throws(Dying) {
        while !pipes[c].commands.isEmpty {
            let n = pipes[c].commands.withUnsafeBytes { Glibc.write(pipes[c].toSpawn, $0.baseAddress!, $0.count) }
            if n > 0 { pipes[c].commands.removeFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            throw Dying.lostSpawn
        }
    }

    /// Appends a failure to bounce/N, fsync'd, before the recipient is
    /// marked done; on trouble the recipient stays and is tried again.
    func addBounce(_ id: Int, _ recipient: [UInt8], _ report: [UInt8]) -> Bool {
        let p = layout.bounce(id)
        let fd = Glibc.open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { logLine("alert: unable to append to bounce message; will try again later"); return false }
        defer { Sys.close(fd) }
        do { try Sys.writeAll(fd, Bounce.record(recipient: recipient, report: report)); try Sys.fsync(fd) } catch {
            logLine("alert: unable to append to bounce message; will try again later")
            return false
        }
        return true
    }

    func markDone(_ c: DeliveryChannel, _ id: Int, _ offset: Int) {
        let p = chanPath(c, id)
        let fd = Glibc.open(p, O_WRONLY | O_CLOEXEC)
        var ok = false
        if fd >= 0 {
            var d = UInt8(ascii: "D")
            ok = pwrite(fd, &d, 1, off_t(offset)) == 1
            Sys.close(fd)
        }
        if !ok { logLine("warning: trouble marking \(p); message will be delivered twice!") }
    }

    /// Finishes the messages whose recipients are all done: for each, its
    /// bounce, then mess and intd (qmail-clean), then info. The qmail-clean
    /// requests of all of them go in one exchange, instead of one wait for
    /// qmail-clean per message. A message whose step failed is answered
    /// not ok (the scheduler tries it again later).
    func finishPending() throws(Dying) {
        while !finishQueue.isEmpty {
            let batch = finishQueue
            finishQueue = []
            var ok = [Bool](repeating: true, count: batch.count)
            var clean: [Int] = []
            var directDone: [Int] = []
            for (k, m) in batch.enumerated() {
                // A direct message succeeded: todo/N (its record) goes first, then mess/N.
                if direct[m.id] != nil { directDone.append(k); continue }
                guard injectBounce(m.id, sender: m.sender) else { ok[k] = false; continue }
                // mess and intd go before info, so that a crash here leaves
                // info/N, which the next start finishes, and never an
                // orphaned mess/N. A mess/N newer than info/N is another
                // message that reused the inode number after an earlier
                // attempt removed ours: keep it.
                if let info = try? Sys.stat(layout.info(m.id)), let mess = try? Sys.stat(layout.mess(m.id)),
                   (mess.st_ctim.tv_sec, mess.st_ctim.tv_nsec) <= (info.st_mtim.tv_sec, info.st_mtim.tv_nsec) {
                    clean.append(k)
                }
            }
            let requests = directDone.flatMap { ["todo/\(batch[$0].id)", "foop/\(batch[$0].id)"] }
                + clean.map { "foop/\(batch[$0].id)" }
            let answers = try cleanRequests(requests)
            for (n, k) in directDone.enumerated() {
                if answers[2 * n] && answers[2 * n + 1] { direct[batch[k].id] = nil } else { ok[k] = false }
            }
            for (k, cleaned) in zip(clean, answers.dropFirst(2 * directDone.count)) where !cleaned { ok[k] = false }
            for (k, m) in batch.enumerated() where ok[k] && !directDone.contains(k) { ok[k] = unlinkIfPresent(layout.info(m.id)) }
            for (k, m) in batch.enumerated() { try perform(.finished(message: m.id, ok: ok[k])) }
        }
    }

    func injectBounce(_ id: Int, sender: [UInt8]) -> Bool {
        let bp = layout.bounce(id)
        guard let r = read(bp) else { return false }
        guard let records = r else { return true }
        switch Bounce.plan(originalSender: sender, settings: bounceSettings) {
        case .discard:
            logLine(SendLog.tripleBounce(id))
        case .send(let sender, let recipient, let double):
            let mfd: Int32
            do { mfd = try Sys.open(layout.mess(id), O_RDONLY) } catch {
                logLine("warning: unable to open \(layout.mess(id)); will try bounce again later"); return false
            }
            defer { Sys.close(mfd) }
            let qq: QueueClient
            do { qq = try QueueClient(program: home.bin("qmail-queue")) } catch {
                logLine("warning: unable to start qmail-queue, will try later"); return false
            }
            qq.put(Bounce.head(recipient: recipient, double: double, records: records, settings: bounceSettings, now: Sys.now()))
            let reader = ByteReader(fd: mfd, capacity: 65536)
            do { try reader.forEachChunk { qq.put($0) } } catch {
                _ = qq.close()
                logLine("warning: unable to read \(layout.mess(id)); will try bounce again later"); return false
            }
            qq.from(sender)
            qq.to(recipient)
            let pid = qq.queuePid
            if let f = qq.close() {
                logLine("warning: trouble injecting bounce message, will try later: \(SendLog.safe(f.description))")
                return false
            }
            logLine(SendLog.bounce(id, qp: Int(pid)))
        }
        return unlinkIfPresent(bp)
    }
}
