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

public final class QueueSender {

    /// qmail-send's timers: rescan todo/ even without a trigger, and look
    /// for ossified message files.
    static let sleepTodo = 1500
    static let sleepCleanup = 76431
    static let reportMax = 10000

    struct Delivery {
        let message: Int
        let offset: Int
        let recipient: [UInt8]
        let delid: Int
    }

    final class ChannelJob {
        /// Recipients not yet done, in file order.
        var recipients: [ChannelRecipient] = []
        /// Offsets still to attempt in the current pass.
        var queue: [Int] = []
        var inFlight = 0
        var open = false
        var dying = false
        var nextTry = 0
        var hasFile = false
    }

    final class Message {
        let id: Int
        let birth: Int
        let sender: [UInt8]
        let jobs = [ChannelJob(), ChannelJob()]
        /// When finishing (bounce, cleanup) failed, try again at this time.
        var finishAt: Int? = nil
        init(id: Int, birth: Int, sender: [UInt8]) { self.id = id; self.birth = birth; self.sender = sender }
    }

    let home: QmailHome
    let layout = QueueLayout(root: ".")
    let control: Control
    var router: Router
    var bounceSettings: Bounce.Settings
    var lifetime: Int
    var concurrency = [10, 20]
    var spawnLimit = [SpawnServer.maxSlots, SpawnServer.maxSlots]
    var slots: [[Delivery?]] = [[], []]
    var used = [0, 0]
    var nextDelid = 1
    var messages: [Int: Message] = [:]
    var todoPending: [Int] = []
    var nextTodoScan = 0
    var nextCleanup = 0
    var exiting = false

    let log = ByteWriter(fd: 0, capacity: 16384)
    let toSpawn: [Int32] = [1, 3]
    let fromSpawn: [Int32] = [2, 4]
    var outBuf: [[UInt8]] = [[], []]
    var inLine: [[UInt8]] = [[], []]
    var triggerFd: Int32 = -1

    init(home: QmailHome, control: Control, router: Router, bounce: Bounce.Settings, lifetime: Int) {
        self.home = home
        self.control = control
        self.router = router
        self.bounceSettings = bounce
        self.lifetime = lifetime
    }

    // MARK: logging

    /// One log line, written at once as qmail-send does: a kill -9 right
    /// after an event cannot lose its line.
    func logLine(_ s: String) {
        _ = try? log.put(s)
        _ = try? log.put(byte: Ascii.lf)
        _ = try? log.flush()
    }

    func logStatus() {
        logLine(SendLog.status(local: used[0], localMax: concurrency[0], remote: used[1], remoteMax: concurrency[1]))
    }

    // MARK: entry point

    public static func main() -> Int32 {
        let home = QmailHome.current()
        let log = ByteWriter(fd: 0)
        func alert(_ s: String) -> Int32 {
            _ = try? log.put("alert: cannot start: \(s)\n"); _ = try? log.flush(); return 111
        }
        guard chdir(home.path) == 0 else { return alert("unable to switch to home directory") }
        let control = Control(directory: "control")
        let router: Router, bounce: Bounce.Settings, lifetime: Int, conc: [Int]
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
        let s = QueueSender(home: QmailHome(path: home.path), control: Control(directory: home.control),
                            router: router, bounce: bounce, lifetime: lifetime)
        s.concurrency = conc
        return s.run()
    }

    static func readConcurrency(_ c: Control) throws -> [Int] {
        [min(max(try c.number("concurrencylocal"), 0), SpawnServer.maxSlots),
         min(max(try c.number("concurrencyremote"), 0), SpawnServer.maxSlots)]
    }

    func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // Our pipes must not leak into qmail-queue when we inject a bounce.
        for fd: Int32 in 0...6 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        for c in 0..<2 { _ = fcntl(toSpawn[c], F_SETFL, fcntl(toSpawn[c], F_GETFL) | O_NONBLOCK) }
        guard let wake = try? Sys.pipeCloexec() else { return 111 }
        _ = fcntl(wake.read, F_SETFL, O_NONBLOCK)
        _ = fcntl(wake.write, F_SETFL, O_NONBLOCK)
        sendWakeFd = wake.write
        signal(SIGTERM) { _ in sendFlagTerm = 1; sendWake() }
        signal(SIGALRM) { _ in sendFlagAlarm = 1; sendWake() }
        signal(SIGHUP) { _ in sendFlagHup = 1; sendWake() }

        // Each spawn announces how many deliveries it can run at once.
        for c in 0..<2 {
            var b: UInt8 = 0
            var r: Int
            repeat { r = Glibc.read(fromSpawn[c], &b, 1) } while r < 0 && errno == EINTR
            if r != 1 {
                logLine("alert: cannot start: hath the daemon spawn no fire?")
                _ = try? log.flush()
                return 111
            }
            spawnLimit[c] = Int(b)
        }
        applyConcurrency()
        openTrigger()
        recover()
        logStatus()

        var readBuf = [UInt8](repeating: 0, count: 4096)
        while true {
            if sendFlagTerm != 0 { sendFlagTerm = 0; exiting = true }
            if sendFlagAlarm != 0 {
                sendFlagAlarm = 0
                for m in messages.values { for j in m.jobs where !j.open { j.nextTry = 0 }; m.finishAt = m.finishAt.map { _ in 0 } }
            }
            if sendFlagHup != 0 { sendFlagHup = 0; reread() }
            let now = Sys.now()
            if exiting && used[0] == 0 && used[1] == 0 {
                logLine("status: exiting")
                _ = try? log.flush()
                return 0
            }
            if !exiting {
                if now >= nextTodoScan { scanTodo(); nextTodoScan = now + Self.sleepTodo }
                var n = 0
                while !todoPending.isEmpty && n < 10 { processTodo(todoPending.removeFirst()); n += 1 }
                if now >= nextCleanup { cleanupOssified(now); nextCleanup = now + Self.sleepCleanup }
                finishDue(now)
                startDeliveries(now)
            }
            _ = try? log.flush()

            var pfds: [pollfd] = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            for c in 0..<2 {
                pfds.append(pollfd(fd: fromSpawn[c], events: Int16(POLLIN), revents: 0))
                pfds.append(pollfd(fd: toSpawn[c], events: outBuf[c].isEmpty ? 0 : Int16(POLLOUT), revents: 0))
            }
            if triggerFd >= 0 { pfds.append(pollfd(fd: triggerFd, events: Int16(POLLIN), revents: 0)) }
            let timeout = todoPending.isEmpty ? pollTimeout(now) : 0
            let r = poll(&pfds, nfds_t(pfds.count), Int32(min(timeout, 3600) * 1000))
            if r < 0 && errno != EINTR { logLine("alert: poll failed"); _ = try? log.flush(); return 111 }
            while readBuf.withUnsafeMutableBytes({ Glibc.read(wake.read, $0.baseAddress!, $0.count) }) > 0 {}
            for c in 0..<2 {
                if pfds[1 + 2 * c].revents != 0 {
                    let n = readBuf.withUnsafeMutableBytes { Glibc.read(fromSpawn[c], $0.baseAddress!, $0.count) }
                    if n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) {
                        logLine("alert: oh no! lost spawn connection! dying...")
                        _ = try? log.flush()
                        return 111
                    }
                    if n > 0 { handleReportBytes(DeliveryChannel(rawValue: c)!, readBuf[0..<n]) }
                }
                flushCommands(c)
            }
            if triggerFd >= 0, let t = pfds.last, t.revents != 0 {
                while readBuf.withUnsafeMutableBytes({ Glibc.read(triggerFd, $0.baseAddress!, $0.count) }) > 0 {}
                if t.revents & Int16(POLLHUP | POLLERR) != 0 { Sys.close(triggerFd); openTrigger() }
                nextTodoScan = 0
            }
        }
    }

    func applyConcurrency() {
        for c in 0..<2 {
            concurrency[c] = min(concurrency[c], spawnLimit[c])
            while slots[c].count < concurrency[c] { slots[c].append(nil) }
        }
    }

    func reread() {
        if let r = try? Router.load(Control(directory: home.control)) { router = r }
        else { logLine("alert: unable to reread controls") }
        if let c = try? Self.readConcurrency(Control(directory: home.control)) {
            concurrency = c
            applyConcurrency()
        }
    }

    func openTrigger() {
        // Read-write so that the fifo never reports end of file when the last injector closes it.
        triggerFd = Glibc.open("lock/trigger", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        if triggerFd < 0 { logLine("warning: unable to open lock/trigger; new mail waits for the next todo scan") }
    }

    /// Seconds until something is due.
    func pollTimeout(_ now: Int) -> Int {
        var t = max(nextTodoScan - now, 0)
        if exiting { return 60 }
        for m in messages.values {
            if let f = m.finishAt { t = min(t, max(f - now, 0)) }
            for c in 0..<2 {
                let j = m.jobs[c]
                if j.open {
                    if !j.queue.isEmpty && used[c] < concurrency[c] { t = 0 }
                } else if !j.recipients.isEmpty && concurrency[c] > 0 {
                    t = min(t, max(j.nextTry - now, 0))
                }
            }
        }
        return t
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

    func recover() {
        scanTodo()
        let todo = Set(todoPending)
        for s in 0..<QueueLayout.split {
            for id in listIds("info/\(s)") where !todo.contains(id) { load(id) }
        }
    }

    func read(_ path: String) -> [UInt8]?? {
        do { return .some(try FileIO.read(path, limit: 64 << 20)) } catch {
            logLine("warning: unable to read \(path): \(SendLog.safe(String(describing: error)))")
            return nil
        }
    }

    /// Resumes a message from info/N and its channel files.
    func load(_ id: Int) {
        guard let infoRead = read(layout.info(id)), let info = infoRead, let st = try? Sys.stat(layout.info(id)) else { return }
        let m = Message(id: id, birth: Int(st.st_mtim.tv_sec), sender: Records.sender(fromInfo: info) ?? [])
        for c in DeliveryChannel.allCases {
            guard let r = read(chanPath(c, id)) else { return }
            guard let data = r else { continue }
            m.jobs[c.rawValue].hasFile = true
            m.jobs[c.rawValue].recipients = Records.channel(data).filter { !$0.done }
        }
        messages[id] = m
        for c in DeliveryChannel.allCases where m.jobs[c.rawValue].hasFile && m.jobs[c.rawValue].recipients.isEmpty {
            channelDone(m, c)
        }
        if !m.jobs[0].hasFile && !m.jobs[1].hasFile { finish(m) }
    }

    func chanPath(_ c: DeliveryChannel, _ id: Int) -> String { c == .local ? layout.local(id) : layout.remote(id) }

    func unlinkIfPresent(_ p: String) -> Bool {
        if unlink(p) == 0 || errno == ENOENT { return true }
        logLine("warning: unable to unlink \(p), will try again later")
        return false
    }

    func writeNew(_ path: String, _ bytes: [UInt8]) -> Bool {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { logLine("warning: unable to create \(path), will try again later"); return false }
        defer { Sys.close(fd) }
        do { try Sys.writeAll(fd, bytes); try Sys.fsync(fd) } catch {
            logLine("warning: trouble writing to \(path), will try again later"); return false
        }
        return true
    }

    /// Splits todo/N into info/N, local/N, remote/N, then has qmail-clean
    /// remove todo/N. Any failure leaves todo/N, and the next scan redoes
    /// the whole split.
    func processTodo(_ id: Int) {
        if messages[id] != nil { return }
        guard let r = read(layout.todo(id)) else { return }
        guard let data = r else { return }  // gone: processed already
        guard let env = TodoEnvelope.parse(data) else {
            logLine("warning: unable to parse todo/\(id), leaving it alone")
            return
        }
        let mess: stat
        do { mess = try Sys.stat(layout.mess(id)) } catch let e as SysError where e.isNotFound {
            logLine("warning: todo/\(id) without its message file; discarding")
            _ = cleanRequest("todo/\(id)")
            return
        } catch {
            logLine("warning: unable to stat mess/\(id), will try again later")
            return
        }
        // Leftovers of a split interrupted by a crash; nothing was delivered from them yet.
        for p in [layout.info(id), layout.local(id), layout.remote(id), layout.bounce(id)] { guard unlinkIfPresent(p) else { return } }
        logLine(SendLog.newMessage(id))
        var lists: [[[UInt8]]] = [[], []]
        for rcpt in env.recipients {
            let (c, addr) = router.route(rcpt)
            lists[c.rawValue].append(addr)
        }
        guard writeNew(layout.info(id), Records.info(sender: env.sender)) else { return }
        for c in DeliveryChannel.allCases where !lists[c.rawValue].isEmpty {
            guard writeNew(chanPath(c, id), Records.channelFile(lists[c.rawValue])) else { return }
        }
        logLine(SendLog.info(id, bytes: Int(mess.st_size), sender: env.sender, qp: env.pid, uid: env.uid))
        guard cleanRequest("todo/\(id)") else { return }
        load(id)
    }

    /// Sends one request to qmail-clean; true on '+'.
    func cleanRequest(_ req: String) -> Bool {
        do {
            try Sys.writeAll(5, Array(req.utf8) + [0])
            var b: UInt8 = 0
            var r: Int
            repeat { r = Glibc.read(6, &b, 1) } while r < 0 && errno == EINTR
            if r != 1 { throw SysError("read") }
            if b != UInt8(ascii: "+") {
                logLine("warning: qmail-clean unable to clean up \(req)")
                return false
            }
            return true
        } catch {
            logLine("alert: oh no! lost qmail-clean connection! dying...")
            _ = try? log.flush()
            Sys.exit(111)
        }
    }

    /// Message files with neither info nor todo, untouched for 36 hours:
    /// leftovers of a qmail-queue that died after writing them.
    func cleanupOssified(_ now: Int) {
        for s in 0..<QueueLayout.split {
            for id in listIds("mess/\(s)") where messages[id] == nil {
                guard let st = try? Sys.stat(layout.mess(id)) else { continue }
                if now <= Int(st.st_atim.tv_sec) + Clean.ossified { continue }
                if Sys.exists(layout.info(id)) || Sys.exists(layout.todo(id)) { continue }
                _ = cleanRequest("foop/\(id)")
            }
        }
    }

    // MARK: deliveries

    func startDeliveries(_ now: Int) {
        for c in DeliveryChannel.allCases {
            let ci = c.rawValue
            guard used[ci] < concurrency[ci] else { continue }
            // Oldest schedule first, like qmail's priority queue.
            let due = messages.values.filter { m in
                let j = m.jobs[ci]
                return (j.open && !j.queue.isEmpty) || (!j.open && !j.recipients.isEmpty && j.nextTry <= now)
            }.sorted { ($0.jobs[ci].nextTry, $0.id) < ($1.jobs[ci].nextTry, $1.id) }
            for m in due {
                let j = m.jobs[ci]
                if !j.open {
                    j.open = true
                    j.dying = now > m.birth + lifetime
                    j.queue = j.recipients.map { $0.offset }
                }
                while !j.queue.isEmpty && used[ci] < concurrency[ci] {
                    let off = j.queue.removeFirst()
                    guard let rcpt = j.recipients.first(where: { $0.offset == off }) else { continue }
                    startOne(c, m, rcpt)
                }
                if used[ci] >= concurrency[ci] { break }
            }
        }
    }

    func startOne(_ c: DeliveryChannel, _ m: Message, _ r: ChannelRecipient) {
        let ci = c.rawValue
        guard let slot = slots[ci].firstIndex(where: { $0 == nil }) else { return }
        let delid = nextDelid
        nextDelid += 1
        slots[ci][slot] = Delivery(message: m.id, offset: r.offset, recipient: r.address, delid: delid)
        used[ci] += 1
        m.jobs[ci].inFlight += 1
        var cmd: [UInt8] = [UInt8(slot)]
        cmd += Array("\(m.id % QueueLayout.split)/\(m.id)".utf8) + [0]
        cmd += Self.verp(sender: m.sender, recipient: r.address) + [0]
        cmd += r.address + [0]
        outBuf[ci] += cmd
        logLine(SendLog.startDelivery(delid, message: m.id, channel: c, recipient: r.address))
        logStatus()
        flushCommands(ci)
    }

    /// qmail's VERP: a sender "pre-@host-@[]" becomes "pre-local=domain@host" for recipient local@domain.
    public static func verp(sender: [UInt8], recipient: [UInt8]) -> [UInt8] {
        let suffix = Array("-@[]".utf8)
        guard sender.hasSuffix(suffix), let ra = recipient.lastIndex(of: Ascii.at) else { return sender }
        let base = Array(sender.dropLast(suffix.count))
        guard let sa = base.lastIndex(of: Ascii.at) else { return sender }
        return Array(base[0..<sa]) + recipient[0..<ra] + [Ascii.equals] + recipient[(ra + 1)...] + base[sa...]
    }

    func flushCommands(_ c: Int) {
        while !outBuf[c].isEmpty {
            let n = outBuf[c].withUnsafeBytes { Glibc.write(toSpawn[c], $0.baseAddress!, $0.count) }
            if n > 0 { outBuf[c].removeFirst(n); continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            logLine("alert: oh no! lost spawn connection! dying...")
            _ = try? log.flush()
            Sys.exit(111)
        }
    }

    func handleReportBytes(_ c: DeliveryChannel, _ bytes: ArraySlice<UInt8>) {
        let ci = c.rawValue
        for b in bytes {
            // Overlong reports are cut, keeping the terminating NUL.
            if b != 0 && inLine[ci].count >= Self.reportMax { continue }
            inLine[ci].append(b)
            // The first byte is the slot number and may itself be 0.
            if b == 0 && inLine[ci].count > 1 {
                let line = inLine[ci]
                inLine[ci] = []
                handleReport(c, slot: Int(line[0]), report: Array(line[1..<(line.count - 1)]))
            }
        }
    }

    func handleReport(_ c: DeliveryChannel, slot: Int, report: [UInt8]) {
        let ci = c.rawValue
        guard slot < slots[ci].count, let d = slots[ci][slot], let m = messages[d.message] else {
            logLine("warning: internal error: delivery report out of range")
            return
        }
        slots[ci][slot] = nil
        used[ci] -= 1
        let j = m.jobs[ci]
        j.inFlight -= 1
        var rep = report
        if rep.first == UInt8(ascii: "Z") && j.dying {
            rep[0] = UInt8(ascii: "D")
            rep += Array("I'm not going to try again; this message has been in the queue too long.\n".utf8)
        }
        let text = Array(rep.dropFirst())
        switch rep.first {
        case UInt8(ascii: "K"):
            logLine(SendLog.delivery(d.delid, .success, report: text))
            markDone(c, m, d.offset)
        case UInt8(ascii: "Z"):
            logLine(SendLog.delivery(d.delid, .deferral, report: text))
        case UInt8(ascii: "D"):
            logLine(SendLog.delivery(d.delid, .failure, report: text))
            if addBounce(m.id, d.recipient, text) { markDone(c, m, d.offset) }
        default:
            logLine("delivery \(d.delid): report mangled, will defer")
        }
        logStatus()
        if j.inFlight == 0 && j.queue.isEmpty && j.open { closeJob(c, m) }
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

    func markDone(_ c: DeliveryChannel, _ m: Message, _ offset: Int) {
        let j = m.jobs[c.rawValue]
        j.recipients.removeAll { $0.offset == offset }
        let p = chanPath(c, m.id)
        let fd = Glibc.open(p, O_WRONLY | O_CLOEXEC)
        var ok = false
        if fd >= 0 {
            var d = UInt8(ascii: "D")
            ok = pwrite(fd, &d, 1, off_t(offset)) == 1
            Sys.close(fd)
        }
        if !ok { logLine("warning: trouble marking \(p); message will be delivered twice!") }
    }

    func closeJob(_ c: DeliveryChannel, _ m: Message) {
        let j = m.jobs[c.rawValue]
        j.open = false
        if j.recipients.isEmpty {
            channelDone(m, c)
            if !m.jobs[0].hasFile && !m.jobs[1].hasFile { finish(m) }
        } else {
            j.nextTry = Retry.next(birth: m.birth, now: Sys.now(), channel: c)
        }
    }

    func channelDone(_ m: Message, _ c: DeliveryChannel) {
        let j = m.jobs[c.rawValue]
        if unlinkIfPresent(chanPath(c, m.id)) { j.hasFile = false } else { m.finishAt = Sys.now() + 60 }
    }

    func finishDue(_ now: Int) {
        for m in messages.values where (m.finishAt ?? Int.max) <= now {
            m.finishAt = nil
            for c in DeliveryChannel.allCases where m.jobs[c.rawValue].hasFile && m.jobs[c.rawValue].recipients.isEmpty && !m.jobs[c.rawValue].open {
                channelDone(m, c)
            }
            if !m.jobs[0].hasFile && !m.jobs[1].hasFile { finish(m) }
        }
    }

    /// Every recipient is done: bounce, remove the message, forget it.
    func finish(_ m: Message) {
        if m.finishAt != nil { return }
        guard injectBounce(m) else { m.finishAt = Sys.now() + 60; return }
        // mess and intd go before info, so that a crash here leaves info/N,
        // which the next start finishes, and never an orphaned mess/N. A
        // mess/N newer than info/N is another message that reused the
        // inode number after an earlier attempt removed ours: keep it.
        if let info = try? Sys.stat(layout.info(m.id)), let mess = try? Sys.stat(layout.mess(m.id)),
           (mess.st_ctim.tv_sec, mess.st_ctim.tv_nsec) <= (info.st_mtim.tv_sec, info.st_mtim.tv_nsec) {
            guard cleanRequest("foop/\(m.id)") else { m.finishAt = Sys.now() + 60; return }
        }
        guard unlinkIfPresent(layout.info(m.id)) else { m.finishAt = Sys.now() + 60; return }
        logLine(SendLog.endMessage(m.id))
        messages[m.id] = nil
    }

    func injectBounce(_ m: Message) -> Bool {
        let bp = layout.bounce(m.id)
        guard let r = read(bp) else { return false }
        guard let records = r else { return true }
        switch Bounce.plan(originalSender: m.sender, settings: bounceSettings) {
        case .discard:
            logLine(SendLog.tripleBounce(m.id))
        case .send(let sender, let recipient, let double):
            let mfd: Int32
            do { mfd = try Sys.open(layout.mess(m.id), O_RDONLY) } catch {
                logLine("warning: unable to open \(layout.mess(m.id)); will try bounce again later"); return false
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
                logLine("warning: unable to read \(layout.mess(m.id)); will try bounce again later"); return false
            }
            qq.from(sender)
            qq.to(recipient)
            let pid = qq.queuePid
            if let f = qq.close() {
                logLine("warning: trouble injecting bounce message, will try later: \(SendLog.safe(f.description))")
                return false
            }
            logLine(SendLog.bounce(m.id, qp: Int(pid)))
        }
        return unlinkIfPresent(bp)
    }
}
