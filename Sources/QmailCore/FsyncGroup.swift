// fsyncs of several files at the same time, from helper threads.
//
// Why: on a journaling file system the first fsync of a group commits the
// metadata of every file written before it, and an fsync that finds its
// file's transaction already committed still sends the disk a cache
// flush of its own (the kernel cannot know that no data came after the
// commit). fsync'd one after another, each file after the first costs a
// flush, waited for in full: measured under bench/e2e_bench.py's load,
// qmail-queue sent 2 such flushes per message and qmail-send's split 1.8,
// against 0.74 for the journal's commits. fsyncs under way at once
// instead join the commit in progress, or share one flush.
//
// Every file still gets its own fsync and the caller waits for all of
// them: what is durable, and when, is what a loop of fsyncs gives.
#if canImport(Glibc)
import Glibc
#endif

public final class FsyncGroup: @unchecked Sendable {
    // Everything below is guarded by `lock`; the helpers wait on `work`,
    // the caller on `done`.
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var files: [Int32] = []
    private var results: [Bool] = []
    private var next = 0
    private var left = 0
    private var helpers = 0
    private let maxHelpers: Int

    /// At most `helpers` threads, started when a group first needs them
    /// and kept for the life of the process (they hold the group).
    public init(helpers: Int) {
        maxHelpers = max(0, helpers)
        pthread_mutex_init(lock, nil)
        pthread_cond_init(work, nil)
        pthread_cond_init(done, nil)
    }

    /// fsyncs `fds` (each retried on EINTR) and returns, once all are
    /// done, whether each succeeded, in order. The calling thread takes
    /// the first file itself, so it starts at once; without helper
    /// threads the files are fsync'd one after another. One caller at a
    /// time: a group belongs to one thread.
    public func fsync(_ fds: [Int32]) -> [Bool] {
        if fds.count < 2 || maxHelpers == 0 { return fds.map(Self.fsyncOne) }
        pthread_mutex_lock(lock)
        files = fds
        results = [Bool](repeating: false, count: fds.count)
        next = 0
        left = fds.count
        while helpers < min(fds.count - 1, maxHelpers) && Sys.detachThread(stackSize: Self.stackSize, { [self] in serve() }) {
            helpers += 1
        }
        pthread_cond_broadcast(work)
        takeAll()
        while left > 0 { pthread_cond_wait(done, lock) }
        let out = results
        files = []
        pthread_mutex_unlock(lock)
        return out
    }

    static func fsyncOne(_ fd: Int32) -> Bool { (try? Sys.fsync(fd)) != nil }

    /// A helper does nothing but fsync: a small stack, so that helpers
    /// start under softlimit's address space limits too (see
    /// Sys.detachThread). qmail-send's sync threads take the same.
    public static let stackSize = 256 * 1024

    /// With `lock` held: fsyncs files of the current group until none is
    /// left to start.
    private func takeAll() {
        while next < files.count {
            let k = next
            next += 1
            let fd = files[k]
            pthread_mutex_unlock(lock)
            let ok = Self.fsyncOne(fd)
            pthread_mutex_lock(lock)
            results[k] = ok
            left -= 1
            if left == 0 { pthread_cond_signal(done) }
        }
    }

    private func serve() {
        pthread_mutex_lock(lock)
        while true {
            while next >= files.count { pthread_cond_wait(work, lock) }
            takeAll()
        }
    }
}
