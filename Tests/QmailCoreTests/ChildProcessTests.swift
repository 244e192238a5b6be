import XCTest
import Glibc
import TestSupport
@testable import QmailCore

@_silgen_name("setresuid") private func setresuid(_ r: uid_t, _ e: uid_t, _ s: uid_t) -> Int32

final class ChildProcessTests: XCTestCase {
    /// Everything left on `fd`, which is then closed.
    func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        close(fd)
        return out
    }

    func sh(_ script: String) -> ChildProcess.Plan { ChildProcess.Plan(["/bin/sh", "-c", script]) }

    /// Runs `body` in a forked child and returns how the child ended; for
    /// tests that change this process's ids or signals.
    func inChild(_ body: () -> Int32) throws -> ChildStatus? {
        ChildProcess.wait(try ChildProcess.forkRunning(body))
    }

    func testCaptureCollectsOutputAndStatus() throws {
        let (st, out) = try ChildProcess.capture(sh("printf 'a\\0b'; exit 3"))
        XCTAssertEqual(st, .exited(3))
        XCTAssertBytes(out, b("a\0b"))
        let (st2, _) = try ChildProcess.capture(sh("kill -9 $$"))
        XCTAssertEqual(st2, .signaled(9))
        XCTAssertEqual(st2.shellCode, 137)
        XCTAssertNil(st2.exitCode)
    }

    func testOutputLimit() throws {
        let (_, out) = try ChildProcess.capture(sh("yes | head -c 100000"), limit: 10)
        XCTAssertEqual(out.count, 10)
    }

    func testMissingProgramThrowsOnBothWays() {
        // posix_spawn reports the exec failure itself; a forked child (made
        // so by the directory) reports it through its pipe.
        var plan = ChildProcess.Plan(["prog"], program: "/nonexistent/prog")
        XCTAssertThrowsError(try ChildProcess.spawn(plan)) { e in
            XCTAssertEqual((e as? ChildProcess.Failure)?.step, .exec)
            XCTAssertEqual((e as? ChildProcess.Failure)?.errno, ENOENT)
        }
        plan.directory = "/"
        XCTAssertThrowsError(try ChildProcess.spawn(plan)) { e in
            XCTAssertEqual((e as? ChildProcess.Failure)?.step, .exec)
            XCTAssertEqual((e as? ChildProcess.Failure)?.errno, ENOENT)
        }
        plan.directory = "/nonexistent/dir"
        XCTAssertThrowsError(try ChildProcess.spawn(plan)) { e in
            XCTAssertEqual((e as? ChildProcess.Failure)?.step, .directory)
        }
        XCTAssertNil(ChildProcess.reapAny(), "a child that failed to start is reaped")
    }

    func testFdMapAndEnvironmentOnBothWays() throws {
        for directory in [nil, "/tmp"] {
            let p1 = try Sys.pipeCloexec(), p2 = try Sys.pipeCloexec(), input = try Sys.pipeCloexec()
            try Sys.writeAll(input.write, b("from fd 7"))
            close(input.write)
            // The two write ends trade numbers: each source is the other's
            // target, which a naive run of dup2 calls would clobber.
            // bash: dash takes only one-digit descriptors in redirections.
            var plan = ChildProcess.Plan(["/bin/bash", "-c",
                                          "printf \"$GREETING ${HOME-unset}\" >&\(p2.write); cat <&7 >&\(p1.write); pwd -P >&2"])
            plan.fds = [.dup(p1.write, to: p2.write), .dup(p2.write, to: p1.write), .dup(input.read, to: 7),
                        .open("/dev/null", flags: O_WRONLY, to: 1), .open("/dev/null", flags: O_RDONLY, to: 0)]
            plan.environment = ChildProcess.environment(changing: ["GREETING": "hello", "HOME": nil])
            let err = try Sys.pipeCloexec()
            plan.fds.append(.dup(err.write, to: 2))
            plan.directory = directory
            let pid = try ChildProcess.spawn(plan)
            for fd in [p1.write, p2.write, input.read, err.write] { close(fd) }
            let one = readAll(p1.read), two = readAll(p2.read), where_ = readAll(err.read)
            XCTAssertEqual(ChildProcess.wait(pid), .exited(0))
            XCTAssertEqual(one.string, "hello unset", "fd \(p2.write) in the child is our p1")
            XCTAssertEqual(two.string, "from fd 7")
            XCTAssertEqual(where_.string, (directory ?? String(cString: getcwd(nil, 0))) + "\n")
        }
    }

    func testSignalsStartAtDefault() throws {
        let old = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, old) }
        let (st, out) = try ChildProcess.capture(ChildProcess.Plan(["cat", "/proc/self/status"]))
        XCTAssertEqual(st, .exited(0))
        let line = out.string.split(separator: "\n").first { $0.hasPrefix("SigIgn:") } ?? ""
        let ignored = UInt64(line.split(separator: "\t").last ?? "", radix: 16) ?? 1
        XCTAssertEqual(ignored & (1 << (UInt64(SIGPIPE) - 1)), 0, "SIGPIPE is not ignored in the child: \(line)")
    }

    func testWaitWithTimeoutKillsAHungChild() throws {
        let pid = try ChildProcess.spawn(ChildProcess.Plan(["sleep", "30"]))
        XCTAssertNil(ChildProcess.tryWait(pid), "still running")
        var t0 = timespec(), t1 = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t0)
        XCTAssertNil(ChildProcess.wait(pid, timeout: 0.3))
        clock_gettime(CLOCK_MONOTONIC, &t1)
        XCTAssertLessThan(t1.tv_sec - t0.tv_sec, 5)
        XCTAssertEqual(kill(pid, 0), -1, "killed and reaped")
        XCTAssertEqual(errno, ESRCH)
        let quick = try ChildProcess.spawn(sh("exit 7"))
        XCTAssertEqual(ChildProcess.wait(quick, timeout: 10), .exited(7))
    }

    func testSignalledChildStatus() throws {
        let pid = try ChildProcess.spawn(ChildProcess.Plan(["sleep", "30"]))
        kill(pid, SIGTERM)
        XCTAssertEqual(ChildProcess.wait(pid), .signaled(SIGTERM))
        XCTAssertEqual(ChildStatus.signaled(SIGTERM).waitStatus, SIGTERM)
        XCTAssertEqual(ChildStatus(waitStatus: 3 << 8), .exited(3))
        XCTAssertEqual(ChildStatus.exited(3).waitStatus, 768)
        XCTAssertNil(ChildProcess.wait(pid), "already reaped")
    }

    func testReapAny() throws {
        let pid = try ChildProcess.spawn(sh("exit 5"))
        var reaped: (pid: pid_t, status: ChildStatus)?
        for _ in 0..<500 where reaped == nil {
            reaped = ChildProcess.reapAny()
            if reaped == nil { usleep(10_000) }
        }
        XCTAssertEqual(reaped?.pid, pid)
        XCTAssertEqual(reaped?.status, .exited(5))
    }

    func testExecInPlaceFailureReturns() throws {
        let st = try inChild {
            let e = ChildProcess.exec(ChildProcess.Plan(["prog"], program: "/nonexistent/prog"))
            return e.step == .exec && e.errno == ENOENT ? 0 : 1
        }
        XCTAssertEqual(st, .exited(0))
    }

    func testForkRunningEndsWithTheBodysCode() throws {
        XCTAssertEqual(try inChild { 42 }, .exited(42))
    }

    func testExitOnAlarmSaysTheLastMessageAndExits() throws {
        let p = try Sys.pipeCloexec()
        let st = try inChild {
            guard dup2(p.write, 2) == 2 else { return 1 }
            Sys.exitOnAlarm(code: 3, message: Array("first\n".utf8))
            Sys.exitOnAlarm(code: 7, message: Array("too slow\n".utf8))
            alarm(1)
            // Bounded: the alarm ends the child long before the sleep does.
            sleep(10)
            return 1
        }
        Sys.close(p.write)
        XCTAssertEqual(st, .exited(7))
        XCTAssertBytes(readAll(p.read), Array("too slow\n".utf8))
    }

    // MARK: privileges (root only)

    func testSpawnAsAnotherUser() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root")
        var plan = ChildProcess.Plan(["/bin/sh", "-c", "id -u; id -g; id -G"])
        plan.credentials = Credentials(uid: 65534, gid: 65534)
        let (st, out) = try ChildProcess.capture(plan)
        XCTAssertEqual(st, .exited(0))
        XCTAssertEqual(out.string, "65534\n65534\n65534\n")
    }

    func testSpawnAsAnotherUserLeavesEveryThreadOfOursAsItWas() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root")
        // The child runs in our memory until its exec (clinux_spawn): the
        // ids it takes must be its own, not those of our threads, which
        // glibc's setuid() would change along with it.
        let gate = try Sys.pipeCloexec()
        let fd = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        fd.pointee = gate.read
        var thread = pthread_t()
        XCTAssertEqual(pthread_create(&thread, nil, { p in
            var b: UInt8 = 0
            _ = read(p!.assumingMemoryBound(to: Int32.self).pointee, &b, 1)
            return nil
        }, fd), 0)
        var plan = ChildProcess.Plan(["/bin/sh", "-c", "id -u; id -g; id -G"])
        plan.credentials = Credentials(uid: 65534, gid: 65534, groups: .member(user: "nobody"))
        plan.directory = "/"
        let (st, out) = try ChildProcess.capture(plan)
        XCTAssertEqual(st, .exited(0))
        XCTAssertEqual(out.string.split(separator: "\n").prefix(2), ["65534", "65534"])
        var uids: [String] = []
        for task in try Sys.listDirectory("/proc/self/task") where !task.hasPrefix(".") {
            let status = try FileIO.read("/proc/self/task/\(task)/status") ?? []
            for line in status.split(separator: Ascii.lf) where line.starts(with: Array("Uid:".utf8)) {
                uids.append(Array(line).string)
            }
        }
        close(gate.write)
        pthread_join(thread, nil)
        close(gate.read)
        fd.deallocate()
        XCTAssertGreaterThanOrEqual(uids.count, 2, "this test and the waiting thread")
        XCTAssertEqual(Set(uids), ["Uid:\t0\t0\t0\t0"])
        XCTAssertEqual(geteuid(), 0)
    }

    func testDropIsForGood() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root")
        let st = try inChild {
            guard Privileges.drop(to: Credentials(uid: 65534, gid: 65534)) == nil else { return 1 }
            return getuid() == 65534 && geteuid() == 65534 && getegid() == 65534 && setuid(0) != 0 ? 0 : 2
        }
        XCTAssertEqual(st, .exited(0))
    }

    func testDropRefusesWhenRootCanComeBack() throws {
        try XCTSkipUnless(geteuid() == 0, "needs root")
        // Real and effective uid are already the target, but the saved uid
        // is still root: setuid(0) would succeed, so the drop must fail.
        let st = try inChild {
            guard setgid(65534) == 0, setresuid(65534, 65534, 0) == 0 else { return 3 }
            return Privileges.drop(to: Credentials(uid: 65534, gid: 65534)) == nil ? 1 : 0
        }
        XCTAssertEqual(st, .exited(0))
        // And a spawn under those credentials never runs its program.
        let ran = "/tmp/sq-drop-\(getpid())"
        unlink(ran)
        let st2 = try inChild {
            guard setgid(65534) == 0, setresuid(65534, 65534, 0) == 0 else { return 3 }
            var plan = ChildProcess.Plan(["/bin/sh", "-c", "touch \(ran)"])
            plan.credentials = Credentials(uid: 65534, gid: 65534)
            do { _ = try ChildProcess.spawn(plan); return 1 } catch { return (error as? ChildProcess.Failure)?.step == .credentials ? 0 : 2 }
        }
        XCTAssertEqual(st2, .exited(0))
        XCTAssertFalse(Sys.exists(ran))
    }
}
