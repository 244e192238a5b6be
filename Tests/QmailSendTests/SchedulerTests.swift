import XCTest
import QmailCore
@testable import QmailSend
import TestSupport

/// Drives a Scheduler as qmail-send's shell does, with the queue files in
/// memory: each action becomes a line of `trace`, and the actions that need
/// an answer are answered at once (with `recordOK`, `removeOK`, `finishOK`).
struct SchedulerRun {
    var scheduler: Scheduler
    var now = 1000
    var recordOK = true
    var removeOK = true
    var finishOK = true
    var trace: [String] = []
    /// Deliveries handed to a spawn and not yet reported, by channel and slot.
    var running: [Delivery] = []

    init(lifetime: Int = 604800, local: Int = 10, remote: Int = 20) {
        scheduler = Scheduler(lifetime: lifetime, concurrency: PerChannel(local: local, remote: remote))
    }

    /// The trace of one event, cleared first.
    @discardableResult
    mutating func send(_ e: SchedulerEvent) -> [String] {
        trace = []
        apply(e)
        return trace
    }

    private mutating func apply(_ e: SchedulerEvent) {
        for a in scheduler.handle(e, now: now) {
            switch a {
            case .log(let s): trace.append(s)
            case .deliver(let d):
                running.append(d)
                trace.append("deliver \(d.channel.name) slot \(d.slot) msg \(d.message) \(d.sender.string) -> \(d.recipient.string)")
            case .markDone(let c, let id, let offset): trace.append("mark \(c.name)/\(id) at \(offset)")
            case .recordFailure(let c, let id, let offset, let rcpt, let report):
                trace.append("bounce/\(id) += <\(rcpt.string)> \(report.string)")
                apply(.failureRecorded(c, message: id, offset: offset, ok: recordOK))
            case .removeChannelFile(let c, let id):
                trace.append("unlink \(c.name)/\(id)")
                apply(.channelFileRemoved(c, message: id, ok: removeOK))
            case .finish(let id, let sender):
                trace.append("finish \(id) from <\(sender.string)>")
                apply(.finished(message: id, ok: finishOK))
            }
        }
    }

    /// A new message from todo: channel files as qmail-send writes them.
    @discardableResult
    mutating func arrive(_ id: Int, birth: Int? = nil, sender: String = "me@here",
                         local: [String]? = nil, remote: [String]? = nil) -> [String] {
        let files = PerChannel(local: local.map { Records.channel(Records.channelFile($0.map(b))) },
                               remote: remote.map { Records.channel(Records.channelFile($0.map(b))) })
        return send(.arrived(QueuedMessage(id: id, birth: birth ?? now, sender: b(sender), recipients: files)))
    }

    @discardableResult
    mutating func tick() -> [String] { send(.tick) }

    /// The spawn's report for the running delivery to `recipient`.
    @discardableResult
    mutating func report(_ recipient: String, _ text: String) -> [String] {
        guard let i = running.firstIndex(where: { $0.recipient == b(recipient) }) else {
            XCTFail("no delivery running to \(recipient)")
            return []
        }
        let d = running.remove(at: i)
        return send(.report(d.channel, slot: d.slot, report: b(text)))
    }

    var deliveries: [String] { trace.filter { $0.hasPrefix("deliver ") } }
}

final class SchedulerTests: XCTestCase {
    func testANewMessageIsDeliveredThenRemoved() {
        var r = SchedulerRun()
        XCTAssertEqual(r.arrive(7, local: ["a@here"]), [])
        XCTAssertEqual(r.tick(), ["starting delivery 1: msg 7 to local a@here",
                                  "status: local 1/10 remote 0/20",
                                  "deliver local slot 0 msg 7 me@here -> a@here"])
        XCTAssertEqual(r.report("a@here", "Kdid 0+1+0/"), ["delivery 1: success: did_0+1+0/",
                                                           "mark local/7 at 0",
                                                           "status: local 0/10 remote 0/20",
                                                           "unlink local/7",
                                                           "finish 7 from <me@here>",
                                                           "end msg 7"])
        XCTAssertFalse(r.scheduler.holds(7))
        XCTAssertEqual(r.tick(), [])
    }

    func testConcurrencyLimitIsRespectedAndSlotsReused() {
        var r = SchedulerRun(local: 2)
        r.arrive(1, local: ["a@h", "b@h", "c@h", "d@h"])
        r.tick()
        XCTAssertEqual(r.deliveries, ["deliver local slot 0 msg 1 me@here -> a@h", "deliver local slot 1 msg 1 me@here -> b@h"])
        XCTAssertEqual(r.scheduler.channels.local.used, 2)
        XCTAssertEqual(r.tick(), [], "no slot free")
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 1500, "nothing to do until a report")
        r.report("a@h", "Kok")
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 0, "a slot is free and c@h waits")
        r.tick()
        XCTAssertEqual(r.deliveries, ["deliver local slot 0 msg 1 me@here -> c@h"])
        XCTAssertEqual(r.tick(), [])
    }

    func testAFullChannelWithDueJobsWaitsForAReport() {
        // The old scan answered 0 here (a due job), so qmail-send polled
        // without sleeping for as long as the channel stayed full.
        var r = SchedulerRun(local: 1)
        r.arrive(1, local: ["a@h"])
        r.arrive(2, local: ["b@h"])
        r.arrive(3, local: ["c@h"])
        r.tick()
        XCTAssertEqual(r.deliveries, ["deliver local slot 0 msg 1 me@here -> a@h"])
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 1500, "messages 2 and 3 wait for the slot")
        r.report("a@h", "Kok")
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 0)
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver local slot 0 msg 2 me@here -> b@h"])
    }

    func testTriesComeInTheOrderOfTheirTimesAndAlarmMakesThemAllDue() {
        var r = SchedulerRun(remote: 3)
        for id in 1...3 { r.arrive(id, birth: 0, remote: ["m\(id)@far"]) }
        r.now = 1000
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }.count, 3)
        // Deferred in the order 3, 1, 2: next tries at 2601, 8100, 12996.
        func deferAll(_ times: [(Int, Int)]) {
            for (id, t) in times { r.now = t; r.report("m\(id)@far", "Zlater") }
        }
        deferAll([(3, 1000), (1, 5000), (2, 9000)])
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 99999), 0, "message 3's try (2601) is due")
        r.send(.concurrency(PerChannel(local: 10, remote: 1)))
        func order() -> [Int] {
            var got: [Int] = []
            for _ in 0..<3 {
                r.tick()
                guard let d = r.running.last else { break }
                got.append(d.message)
                r.report(d.recipient.string, "Zlater")
            }
            return got
        }
        r.now = 20000
        XCTAssertEqual(order(), [3, 1, 2])
        XCTAssertEqual(r.tick(), [], "each deferred once more, none due")
        r.send(.flush)
        XCTAssertEqual(order(), [1, 2, 3], "all due at once: by message number")
    }

    func testTheSpawnsLimitLowersConcurrency() {
        var r = SchedulerRun(remote: 20)
        r.send(.spawnLimit(.remote, 3))
        r.arrive(1, remote: (1...5).map { "u\($0)@far" })
        r.tick()
        XCTAssertEqual(r.deliveries.count, 3)
        XCTAssertEqual(r.scheduler.status, "status: local 0/10 remote 3/3")
        // A reload asks for more than the spawn can run: still 3.
        r.send(.concurrency(PerChannel(local: 10, remote: 50)))
        XCTAssertEqual(r.scheduler.channels.remote.concurrency, 3)
        r.send(.concurrency(PerChannel(local: 10, remote: 1)))
        r.report("u1@far", "Kok")
        r.report("u2@far", "Kok")
        XCTAssertEqual(r.tick(), [], "one still running, and the new limit is 1")
        r.report("u3@far", "Kok")
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }.count, 1)
    }

    func testZeroConcurrencyStartsNothingAndNeverSpins() {
        var r = SchedulerRun(local: 0)
        r.arrive(1, local: ["a@h"])
        XCTAssertEqual(r.tick(), [])
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 1500)
    }

    func testADeferralIsRetriedOnQmailsSchedule() {
        var r = SchedulerRun()
        r.arrive(3, birth: 1000, local: ["a@h"], remote: ["b@far"])
        r.tick()
        r.now = 1010
        XCTAssertEqual(r.report("a@h", "Zmailbox busy"), ["delivery 1: deferral: mailbox_busy",
                                                          "status: local 0/10 remote 1/20"])
        r.now = 1020
        r.report("b@far", "ZConnection refused")
        // local: birth + (isqrt(10) + 10)^2; remote: birth + (isqrt(20) + 20)^2.
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: 1020, limit: 9999), 1169 - 1020)
        r.now = 1168
        XCTAssertEqual(r.tick(), [])
        r.now = 1169
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver local slot 0 msg 3 me@here -> a@h"])
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: 1169, limit: 9999), 1576 - 1169)
        r.now = 1576
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver remote slot 0 msg 3 me@here -> b@far"])
    }

    func testAlarmMakesEveryRetryDueNow() {
        var r = SchedulerRun()
        r.arrive(3, remote: ["b@far"])
        r.tick()
        r.report("b@far", "Ztimeout")
        XCTAssertEqual(r.tick(), [])
        r.send(.flush)
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }.count, 1)
    }

    func testAPermanentFailureIsBouncedBeforeTheRecipientIsDone() {
        var r = SchedulerRun()
        r.arrive(9, sender: "me@here", local: ["gone@h", "ok@h"])
        r.tick()
        XCTAssertEqual(r.report("gone@h", "DSorry, no mailbox here by that name. (#5.1.1)\n"),
                       ["delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/",
                        "bounce/9 += <gone@h> Sorry, no mailbox here by that name. (#5.1.1)\n",
                        "mark local/9 at 0",
                        "status: local 1/10 remote 0/20"])
        XCTAssertEqual(r.report("ok@h", "Kok"), ["delivery 2: success: ok", "mark local/9 at 8",
                                                 "status: local 0/10 remote 0/20",
                                                 "unlink local/9", "finish 9 from <me@here>", "end msg 9"])
    }

    func testAFailureNotInBounceFileIsTriedAgain() {
        var r = SchedulerRun()
        r.recordOK = false
        r.arrive(9, local: ["gone@h"])
        r.tick()
        let t = r.report("gone@h", "Dno such user")
        XCTAssertFalse(t.contains { $0.hasPrefix("mark") }, "not done while its bounce is not on disk")
        XCTAssertFalse(t.contains { $0.hasPrefix("unlink") })
        XCTAssertTrue(r.scheduler.holds(9))
        r.recordOK = true
        r.send(.flush)
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }.count, 1)
        XCTAssertEqual(r.report("gone@h", "Dno such user").suffix(4),
                       ["status: local 0/10 remote 0/20", "unlink local/9", "finish 9 from <me@here>", "end msg 9"])
    }

    func testOneDeliveryPerRecipientAndLocalAndRemoteTogether() {
        var r = SchedulerRun()
        r.arrive(5, local: ["a@h", "b@h"], remote: ["c@far"])
        r.tick()
        XCTAssertEqual(r.deliveries, ["deliver local slot 0 msg 5 me@here -> a@h",
                                      "deliver local slot 1 msg 5 me@here -> b@h",
                                      "deliver remote slot 0 msg 5 me@here -> c@far"])
        XCTAssertEqual(r.tick(), [], "no recipient is started twice while it runs")
        r.report("a@h", "Kok")
        XCTAssertEqual(r.report("b@h", "Kok").suffix(2), ["status: local 0/10 remote 1/20", "unlink local/5"],
                       "local done: its file goes, the message waits for remote")
        XCTAssertTrue(r.scheduler.holds(5))
        XCTAssertEqual(r.report("c@far", "Kok").suffix(4),
                       ["status: local 0/10 remote 0/20", "unlink remote/5", "finish 5 from <me@here>", "end msg 5"])
    }

    func testOldestScheduleFirst() {
        var r = SchedulerRun(remote: 1)
        r.arrive(1, birth: 0, remote: ["old@far"])
        r.tick()
        r.report("old@far", "Zlater")  // next try at 0 + (isqrt(1000) + 20)^2 = 2601
        r.arrive(2, remote: ["new@far"])
        r.now = 3000
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver remote slot 0 msg 2 me@here -> new@far"],
                       "the new message's try (0) comes before the old one's (2601)")
        r.report("new@far", "Kok")
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver remote slot 0 msg 1 me@here -> old@far"])
    }

    func testQueueLifetimeTurnsDeferralsIntoFailures() {
        var r = SchedulerRun(lifetime: 3600)
        r.now = 10000
        r.arrive(4, birth: 10000 - 3000, remote: ["slow@far"])
        r.tick()
        r.report("slow@far", "Ztimeout\n")
        XCTAssertTrue(r.scheduler.holds(4), "within queuelifetime a deferral waits")
        r.now = 10000 + 601
        r.send(.flush)
        r.tick()
        XCTAssertEqual(r.report("slow@far", "Ztimeout\n").prefix(2),
                       ["delivery 2: failure: timeout/I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./",
                        "bounce/4 += <slow@far> timeout\nI'm not going to try again; this message has been in the queue too long.\n"])
        XCTAssertFalse(r.scheduler.holds(4))
        // A success after queuelifetime is still a success.
        r.arrive(5, birth: 0, local: ["a@h"])
        r.tick()
        XCTAssertEqual(r.report("a@h", "Kok").first, "delivery 3: success: ok")
    }

    func testRestartResumesOnlyRecipientsNotDone() {
        var r = SchedulerRun()
        // local/8 on disk after a crash: a@h was done (D), b@h was not.
        var file = Records.channelFile([b("a@h"), b("b@h")])
        file[0] = UInt8(ascii: "D")
        let q = QueuedMessage(id: 8, birth: 500, sender: b("me@here"), recipients: PerChannel(local: Records.channel(file), remote: nil))
        XCTAssertEqual(r.send(.arrived(q)), [])
        XCTAssertEqual(r.tick().filter { $0.hasPrefix("deliver") }, ["deliver local slot 0 msg 8 me@here -> b@h"])
        XCTAssertEqual(r.report("b@h", "Kok")[1], "mark local/8 at 5", "the offset of b@h's T in the file")
    }

    func testRestartFinishesMessagesWhoseRecipientsAreAllDone() {
        var r = SchedulerRun()
        // Every T of remote/8 marked, the crash came before the unlink.
        let q = QueuedMessage(id: 8, birth: 500, sender: b("me@here"),
                              recipients: PerChannel(local: nil, remote: Records.channel(b("Dx@far\0Dy@far\0"))))
        XCTAssertEqual(r.send(.arrived(q)), ["unlink remote/8", "finish 8 from <me@here>", "end msg 8"])
        // No channel files left at all: the crash came after them, before info/N went.
        XCTAssertEqual(r.arrive(9), ["finish 9 from <me@here>", "end msg 9"])
        XCTAssertEqual(r.scheduler.messageCount, 0)
    }

    func testFailedFinishingIsTriedAgainAMinuteLater() {
        var r = SchedulerRun()
        r.finishOK = false
        XCTAssertEqual(r.arrive(2, local: []), ["unlink local/2", "finish 2 from <me@here>"])
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 60)
        r.now += 59
        XCTAssertEqual(r.tick(), [])
        r.now += 1
        r.finishOK = true
        XCTAssertEqual(r.tick(), ["finish 2 from <me@here>", "end msg 2"])
    }

    func testFailedUnlinkOfChannelFileIsTriedAgain() {
        var r = SchedulerRun()
        r.removeOK = false
        r.arrive(2, remote: ["x@far"])
        r.tick()
        XCTAssertEqual(r.report("x@far", "Kok").suffix(1), ["unlink remote/2"])
        r.removeOK = true
        XCTAssertEqual(r.scheduler.secondsUntilDue(now: r.now, limit: 1500), 60)
        r.now += 60
        XCTAssertEqual(r.tick(), ["unlink remote/2", "finish 2 from <me@here>", "end msg 2"])
    }

    func testReportsForNoDeliveryAndMangledReports() {
        var r = SchedulerRun()
        XCTAssertEqual(r.send(.report(.local, slot: 5, report: b("Kok"))), ["warning: internal error: delivery report out of range"])
        XCTAssertEqual(r.send(.report(.local, slot: 200, report: b("Kok"))), ["warning: internal error: delivery report out of range"])
        r.arrive(1, local: ["a@h"])
        r.tick()
        XCTAssertEqual(r.report("a@h", "?what"), ["delivery 1: report mangled, will defer", "status: local 0/10 remote 0/20"])
        XCTAssertTrue(r.scheduler.holds(1))
    }

    func testDeliveryCommandCarriesTheVerpSender() {
        var r = SchedulerRun()
        r.arrive(123, sender: "list-@example.com-@[]", remote: ["bob@far.org"])
        r.tick()
        XCTAssertBytes(r.running[0].command, [0] + b("8/123\0list-bob=far.org@example.com\0bob@far.org\0"))
    }
}

final class ReportReaderTests: XCTestCase {
    func testReportsSplitAcrossReadsAndSlotZero() {
        var rd = ReportReader()
        XCTAssertEqual(rd.feed(ArraySlice([0] + b("Kfi"))).count, 0)
        let got = rd.feed(ArraySlice(b("ne\0") + [3] + b("Zbusy\0") + [1]))
        XCTAssertEqual(got.map { $0.slot }, [0, 3])
        XCTAssertEqual(got.map { $0.report.string }, ["Kfine", "Zbusy"])
        XCTAssertEqual(rd.feed(ArraySlice(b("D\0"))).map { $0.report.string }, ["D"])
    }

    func testOverlongReportsAreCut() {
        var rd = ReportReader()
        let got = rd.feed(ArraySlice([2] + [UInt8](repeating: UInt8(ascii: "K"), count: 20000) + [0]))
        XCTAssertEqual(got.count, 1)
        XCTAssertEqual(got[0].report.count, ReportReader.reportMax - 1)
    }
}
