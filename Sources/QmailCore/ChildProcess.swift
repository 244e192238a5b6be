// Starting programs and waiting for them: the one place in the project
// that calls posix_spawn, fork and exec (ProcessExit.swift, the one that
// ends a process outside programs' mains).
//
// A child that keeps our ids and directory starts through posix_spawn
// (glibc's clone(CLONE_VM|CLONE_VFORK): no page tables to copy, the
// cheapest start there is). A child that must change its ids or its
// directory before exec starts the same way through clinux_spawn (the
// CLinux header), since posix_spawn cannot change ids; both report a
// failed setup or exec, so that both ways fail alike: spawn throws.
// Everything such a child needs is made before the clone; the child only
// makes system calls. fork is left to children that run our own code.
#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// How a child ended.
public enum ChildStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)

    /// From a waitpid status (WIFEXITED and friends are macros, not imported).
    public init(waitStatus s: Int32) {
        let sig = s & 0x7f
        self = sig == 0 ? .exited((s >> 8) & 0xff) : .signaled(sig)
    }

    /// The exit code; nil when a signal ended the child.
    public var exitCode: Int32? {
        if case .exited(let c) = self { return c }
        return nil
    }

    /// The status as wait(2) packs it (less the core-dump bit), for logs
    /// that print it raw as ucspi-tcp's do.
    public var waitStatus: Int32 {
        switch self {
        case .exited(let c): return c << 8
        case .signaled(let s): return s
        }
    }

    /// The exit code, or 128 + the signal, as a shell reports it.
    public var shellCode: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }
}

/// One step of a child's descriptor plan. Sources are our descriptors as
/// they are when the plan starts, whatever earlier steps put on their numbers.
public enum FdAction: Equatable {
    /// Our descriptor becomes the child's `to` (not close-on-exec).
    case dup(Int32, to: Int32)
    /// The child opens `path` on `to`.
    case open(String, flags: Int32, mode: mode_t = 0, to: Int32)

    var target: Int32 {
        switch self {
        case .dup(_, let t), .open(_, _, _, let t): return t
        }
    }
}

public enum ChildProcess {
    /// What to run and how.
    public struct Plan {
        /// The file to run; searched in PATH when `searchPath` and it has no slash.
        public var program: String
        public var argv: [[UInt8]]
        public var searchPath: Bool
        /// "NAME=value" entries; nil: ours.
        public var environment: [[UInt8]]?
        public var fds: [FdAction]
        /// Ids to take for good before exec (see Privileges.drop).
        public var credentials: Credentials?
        public var directory: String?
        /// Signals the child starts with at their default action, whatever
        /// we ignore; its signal mask starts empty.
        public var defaultSignals: [Int32]
        /// The child leads a new session (setsid), away from our terminal.
        public var newSession: Bool

        public static let resetSignals: [Int32] = [SIGPIPE, SIGALRM, SIGXFSZ, SIGCHLD]

        public init(program: String, argv: [[UInt8]], searchPath: Bool = false, environment: [[UInt8]]? = nil,
                    fds: [FdAction] = [], credentials: Credentials? = nil, directory: String? = nil,
                    defaultSignals: [Int32] = Plan.resetSignals, newSession: Bool = false) {
            self.program = program
            self.argv = argv
            self.searchPath = searchPath
            self.environment = environment
            self.fds = fds
            self.credentials = credentials
            self.directory = directory
            self.defaultSignals = defaultSignals
            self.newSession = newSession
        }

        /// Runs `program`, else argv[0] searched in PATH when it has no slash.
        public init(_ argv: [String], program: String? = nil, fds: [FdAction] = []) {
            self.init(argv.map { Array($0.utf8) }, program: program, fds: fds)
        }

        /// Runs `program`, else argv[0] searched in PATH when it has no slash.
        public init(_ argv: [[UInt8]], program: String? = nil, fds: [FdAction] = []) {
            self.init(program: program ?? String(decoding: argv.first ?? [], as: UTF8.self), argv: argv,
                      searchPath: program == nil, fds: fds)
        }
    }

    /// Where a start failed, for callers whose exit code depends on it.
    public enum Step: Int32 { case descriptors = 1, credentials, directory, session, exec }

    public struct Failure: Error, CustomStringConvertible {
        public let step: Step
        public let error: SysError
        public var errno: Int32 { error.errno }
        public var description: String { error.description }
    }

    // MARK: starting

    /// Starts `plan`; returns the child's pid. Throws when the child could
    /// not be made, set up or exec'd (a child that failed is reaped).
    @discardableResult
    public static func spawn(_ plan: Plan) throws(Failure) -> pid_t {
        let p = try Prepared(plan)
        defer { p.release() }
        if plan.credentials == nil && plan.directory == nil { return try p.posixSpawn() }
        return try p.spawnAs()
    }

    /// Replaces this process with `plan`; returns only on failure.
    public static func exec(_ plan: Plan) -> Failure {
        let p: Prepared
        do { p = try Prepared(plan) } catch { return error }
        let (step, e) = p.execHere()
        p.release()
        return p.failure(step, e)
    }

    /// fork(2), for a process that goes on as two: 0 in the child, the
    /// pid in the parent. (A child that runs a piece of our code and ends
    /// is forkRunning's.)
    public static func forkChild() throws(Failure) -> pid_t {
        let pid = Glibc.fork()
        if pid < 0 { throw Failure(step: .exec, error: SysError("fork")) }
        return pid
    }

    /// Forks a child that runs `body` (which may exec) and ends with the
    /// exit code it returns, at once: the parent's buffers and atexit
    /// handlers are the parent's. Returns the child's pid, in the parent.
    public static func forkRunning(_ body: () -> Int32) throws(Failure) -> pid_t {
        let pid = try forkChild()
        if pid == 0 { _exit(body()) }
        return pid
    }

    /// Carries out `fds` in this process (a forked child before exec).
    public static func arrange(_ fds: [FdAction]) -> SysError? {
        let p: Prepared
        do { p = try Prepared(Plan(program: "", argv: [], fds: fds)) } catch { return error.error }
        defer { p.release() }
        let e = p.arrangeHere()
        return e == 0 ? nil : SysError("dup2", errno: e)
    }

    // MARK: waiting

    /// Waits for `pid`; nil when it is not our child (or already reaped).
    public static func wait(_ pid: pid_t) -> ChildStatus? {
        var st: Int32 = 0
        while true {
            let r = waitpid(pid, &st, 0)
            if r == pid { return ChildStatus(waitStatus: st) }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// How `pid` ended, without waiting; nil while it runs (or when it is
    /// not our child).
    public static func tryWait(_ pid: pid_t) -> ChildStatus? {
        var st: Int32 = 0
        while true {
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { return ChildStatus(waitStatus: st) }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// Waits at most `timeout` seconds; a child still running then is
    /// killed (SIGKILL), reaped, and reported as nil.
    public static func wait(_ pid: pid_t, timeout: Double) -> ChildStatus? {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let deadline = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + timeout
        // Short naps first: most children (checkpassword) end within a few ms.
        var nap = 50_000
        while true {
            var st: Int32 = 0
            let r = waitpid(pid, &st, WNOHANG)
            if r == pid { return ChildStatus(waitStatus: st) }
            if r < 0 && errno != EINTR { return nil }
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 >= deadline {
                kill(pid, SIGKILL)
                _ = wait(pid)
                return nil
            }
            var pause = timespec(tv_sec: 0, tv_nsec: nap)
            nanosleep(&pause, nil)
            nap = min(nap * 2, 2_000_000)
        }
    }

    /// Reaps one finished child, any of ours; nil when none has finished.
    public static func reapAny() -> (pid: pid_t, status: ChildStatus)? {
        var st: Int32 = 0
        while true {
            let r = waitpid(-1, &st, WNOHANG)
            if r > 0 { return (r, ChildStatus(waitStatus: st)) }
            if r < 0 && errno == EINTR { continue }
            return nil
        }
    }

    // MARK: running to the end

    /// Runs `plan` to its end; nil when it could not start.
    @discardableResult
    public static func run(_ plan: Plan) -> ChildStatus? {
        guard let pid = try? spawn(plan) else { return nil }
        return wait(pid)
    }

    /// Runs `plan` to its end with its standard output (and standard error,
    /// with `stderrToo`) collected; at most `limit` bytes are kept.
    public static func capture(_ plan: Plan, limit: Int = 65536, stderrToo: Bool = false) throws -> (ChildStatus, [UInt8]) {
        let p = try Sys.pipeCloexec()
        var plan = plan
        plan.fds.append(.dup(p.write, to: 1))
        if stderrToo { plan.fds.append(.dup(p.write, to: 2)) }
        let pid: pid_t
        do { pid = try spawn(plan) } catch {
            Sys.close(p.read); Sys.close(p.write); throw error
        }
        Sys.close(p.write)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = (try? buf.withUnsafeMutableBytes { try Sys.read(p.read, $0.baseAddress!, $0.count) }) ?? 0
            if n <= 0 { break }
            if out.count < limit { out += buf[0..<min(n, limit - out.count)] }
        }
        Sys.close(p.read)
        guard let st = wait(pid) else { throw SysError("waitpid") }
        return (st, out)
    }

    /// Our environment with `changes` made ("NAME" to a value, or nil to remove).
    public static func environment(changing changes: [String: String?]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var e = environ
        while let p = e.pointee {
            let entry = Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
            let name = String(decoding: entry.prefix { $0 != UInt8(ascii: "=") }, as: UTF8.self)
            if changes[name] == nil { out.append(entry) }
            e += 1
        }
        for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
            if let value { out.append(Array("\(name)=\(value)".utf8)) }
        }
        return out
    }
}

/// glibc's execvpe: PATH search with an environment of our own (a GNU
/// extension the Glibc module does not import).
@_silgen_name("execvpe")
private func gnuExecvpe(_ file: UnsafePointer<CChar>, _ argv: UnsafePointer<UnsafeMutablePointer<CChar>?>,
                        _ envp: UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Int32

/// NUL-terminated C strings and the NULL-terminated array of them, owned
/// until `free()`; `array` stays put (execve and environ take it as is).
final class CStrings {
    let array: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int

    init(_ items: [[UInt8]]) {
        count = items.count
        array = .allocate(capacity: items.count + 1)
        for (n, item) in items.enumerated() {
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: item.count + 1)
            for (i, c) in item.enumerated() { p[i] = CChar(bitPattern: c) }
            p[item.count] = 0
            array[n] = p
        }
        array[items.count] = nil
    }

    subscript(i: Int) -> UnsafeMutablePointer<CChar> { array[i]! }

    func free() {
        for i in 0..<count { array[i]?.deallocate() }
        array.deallocate()
    }
}

/// A plan turned into C strings and safe descriptor numbers, before the child starts.
private final class Prepared {
    let plan: Plan
    let path: CStrings
    let argv: CStrings
    let envp: CStrings?
    let directory: CStrings?
    let openPaths: CStrings
    var actions: [FdAction]
    /// Copies of sources that a target would overwrite: close-on-exec, ours to close.
    var lifted: [Int32] = []
    /// Above every target, so that nothing of the plan lands on it.
    let floor: Int32

    typealias Plan = ChildProcess.Plan

    init(_ plan: Plan) throws(ChildProcess.Failure) {
        self.plan = plan
        path = CStrings([Array(plan.program.utf8)])
        argv = CStrings(plan.argv)
        envp = plan.environment.map { CStrings($0) }
        directory = plan.directory.map { CStrings([Array($0.utf8)]) }
        var paths: [[UInt8]] = []
        for case .open(let p, _, _, _) in plan.fds { paths.append(Array(p.utf8)) }
        openPaths = CStrings(paths)
        actions = plan.fds
        let targets = plan.fds.map(\.target)
        floor = max(3, (targets.max() ?? 0) + 1)
        // A source that is also a target (its own included: dup2 onto itself
        // would leave it close-on-exec) is copied out of the way first.
        for (i, a) in actions.enumerated() {
            guard case .dup(let s, let t) = a, targets.contains(s) else { continue }
            let h = fcntl(s, F_DUPFD_CLOEXEC, floor)
            if h < 0 {
                let e = SysError("dup", errno: errno)
                release()
                throw ChildProcess.Failure(step: .descriptors, error: e)
            }
            lifted.append(h)
            actions[i] = .dup(h, to: t)
        }
    }

    func release() {
        for h in lifted { close(h) }
        lifted = []
        path.free(); argv.free(); envp?.free(); directory?.free(); openPaths.free()
    }

    func failure(_ step: ChildProcess.Step, _ e: Int32) -> ChildProcess.Failure {
        let op: String
        switch step {
        case .descriptors: op = "unable to set up descriptors for"
        case .credentials: op = "unable to drop privileges for"
        case .directory: op = "unable to change directory for"
        case .session: op = "unable to start a session for"
        case .exec: op = "unable to run"
        }
        return ChildProcess.Failure(step: step, error: SysError(op, path: plan.program, errno: e))
    }

    func posixSpawn() throws(ChildProcess.Failure) -> pid_t {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        var k = 0
        for a in actions {
            switch a {
            case .dup(let s, let t): posix_spawn_file_actions_adddup2(&fa, s, t)
            case .open(_, let flags, let mode, let t):
                posix_spawn_file_actions_addopen(&fa, t, openPaths[k], flags, mode)
                k += 1
            }
        }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var sigs = sigset_t()
        sigemptyset(&sigs)
        for s in plan.defaultSignals { sigaddset(&sigs, s) }
        posix_spawnattr_setsigdefault(&attr, &sigs)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        // POSIX_SPAWN_SETSID (0x80) is not imported.
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) | (plan.newSession ? 0x80 : 0))
        var pid: pid_t = 0
        let env = envp?.array ?? environ
        let rc = plan.searchPath ? posix_spawnp(&pid, path[0], &fa, &attr, argv.array, env)
                                 : posix_spawn(&pid, path[0], &fa, &attr, argv.array, env)
        if rc != 0 { throw failure(.exec, rc) }
        return pid
    }

    /// Starts a child that takes other ids or another directory before
    /// its exec: clinux_spawn (CLinux), a clone that shares our memory
    /// until the exec, as posix_spawn's does, so that nothing of ours is
    /// copied for it. The child makes only system calls, with what is
    /// made here.
    func spawnAs() throws(ChildProcess.Failure) -> pid_t {
        var kinds: [Int32] = [], sources: [Int32] = [], targets: [Int32] = [], flags: [Int32] = [], modes: [UInt32] = []
        for a in actions {
            switch a {
            case .dup(let s, let t):
                kinds.append(Int32(CLINUX_SPAWN_DUP)); sources.append(s); targets.append(t); flags.append(0); modes.append(0)
            case .open(_, let f, let m, let t):
                kinds.append(Int32(CLINUX_SPAWN_OPEN)); sources.append(-1); targets.append(t); flags.append(f); modes.append(UInt32(m))
            }
        }
        var groups: [gid_t] = []
        var setGroups = false
        if let c = plan.credentials {
            switch c.groups {
            case .only(let list): groups = list; setGroups = true
            case .member(let user): groups = try memberGroups(user, c.gid); setGroups = true
            case .unchanged: break
            }
        }
        let signals = plan.defaultSignals
        var c = clinux_spawn_plan()
        c.path = UnsafePointer(path[0])
        c.argv = UnsafePointer(argv.array)
        c.envp = envp.map { UnsafePointer($0.array) }
        c.search_path = plan.searchPath ? 1 : 0
        c.nfds = Int32(kinds.count)
        c.fd_path = UnsafePointer(openPaths.array)
        c.nsignals = Int32(signals.count)
        c.new_session = plan.newSession ? 1 : 0
        c.set_ids = plan.credentials == nil ? 0 : 1
        c.uid = plan.credentials?.uid ?? 0
        c.gid = plan.credentials?.gid ?? 0
        c.set_groups = setGroups ? 1 : 0
        c.ngroups = Int32(groups.count)
        c.directory = directory.map { UnsafePointer($0[0]) }
        let pid = kinds.withUnsafeBufferPointer { k in sources.withUnsafeBufferPointer { s in
            targets.withUnsafeBufferPointer { t in flags.withUnsafeBufferPointer { f in modes.withUnsafeBufferPointer { m in
                signals.withUnsafeBufferPointer { sig in groups.withUnsafeBufferPointer { g in
                    c.fd_kind = k.baseAddress; c.fd_source = s.baseAddress; c.fd_target = t.baseAddress
                    c.fd_flags = f.baseAddress; c.fd_mode = m.baseAddress
                    c.default_signals = sig.baseAddress; c.groups = g.baseAddress
                    return clinux_spawn(&c)
                } }
            } } }
        } }
        if pid < 0 {
            if c.failed_step != 0 { throw failure(ChildProcess.Step(rawValue: c.failed_step) ?? .exec, c.failed_errno) }
            throw failure(.exec, errno)
        }
        return pid
    }

    /// `user`'s groups from the group database, with `gid` (initgroups'
    /// list, found here: the child cannot read files for it).
    func memberGroups(_ user: String, _ gid: gid_t) throws(ChildProcess.Failure) -> [gid_t] {
        var n: Int32 = 64
        while true {
            var list = [gid_t](repeating: 0, count: Int(n))
            var got = n
            if getgrouplist(user, gid, &list, &got) >= 0 { return Array(list.prefix(Int(got))) }
            if got <= n { throw failure(.credentials, EINVAL) }
            n = got
        }
    }

    /// The descriptor plan, here; 0 or the errno.
    func arrangeHere() -> Int32 {
        var k = 0
        for a in actions {
            switch a {
            case .dup(let s, let t):
                if dup2(s, t) < 0 { return errno }
            case .open(_, let flags, let mode, let t):
                let fd = open(openPaths[k], flags, mode)
                k += 1
                if fd < 0 { return errno }
                if fd != t {
                    if dup2(fd, t) < 0 { return errno }
                    close(fd)
                }
            }
        }
        return 0
    }

    /// Signals, descriptors, session, ids, directory, exec: returns only on failure.
    func execHere() -> (ChildProcess.Step, Int32) {
        for s in plan.defaultSignals { signal(s, SIG_DFL) }
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
        let e = arrangeHere()
        if e != 0 { return (.descriptors, e) }
        if plan.newSession && setsid() < 0 { return (.session, errno) }
        if let c = plan.credentials, let f = Privileges.drop(to: c) { return (.credentials, f.errno) }
        if let d = directory, chdir(d[0]) != 0 { return (.directory, errno) }
        switch (envp, plan.searchPath) {
        case (let env?, true): _ = gnuExecvpe(path[0], argv.array, env.array)
        case (let env?, false): execve(path[0], argv.array, env.array)
        case (nil, true): execvp(path[0], argv.array)
        case (nil, false): execv(path[0], argv.array)
        }
        return (.exec, errno)
    }
}
