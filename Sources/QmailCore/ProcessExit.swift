// Ending the process. A program's main ends it with the exit code its
// library entry point returned; library code returns values and never
// exits. Two things outside a main must end the process themselves, and
// do it here: a forked child that runs our code instead of exec'ing
// (ChildProcess.forkRunning, beside spawn) and a deadline alarm, whose
// handler can do nothing but end the process.
#if canImport(Glibc)
import Glibc
#endif

extension Sys {
    /// Terminates the process at once, without running atexit handlers.
    public static func exit(_ code: Int32) -> Never {
        Glibc._exit(code)
    }

    /// Terminates the process after running atexit handlers and flushing
    /// C stdio buffers.
    public static func exitFlushing(_ code: Int32) -> Never {
        Glibc.exit(code)
    }

    /// From now on SIGALRM ends the process with `code`, after writing
    /// `message` (if any) to fd 2: qmail's way of bounding a whole run or
    /// a blocking read with alarm(2). The handler only writes and _exits,
    /// both async-signal-safe; a later call replaces code and message.
    public static func exitOnAlarm(code: Int32, message: [UInt8] = []) {
        var block = sigset_t(), saved = sigset_t()
        sigemptyset(&block)
        sigaddset(&block, SIGALRM)
        // The handler must never see the message half replaced.
        sigprocmask(SIG_BLOCK, &block, &saved)
        alarmExit.message?.deallocate()
        let copy = UnsafeMutablePointer<UInt8>.allocate(capacity: max(message.count, 1))
        copy.initialize(from: message, count: message.count)
        alarmExit = AlarmExit(code: code, message: copy, count: message.count)
        signal(SIGALRM) { _ in
            if alarmExit.count > 0 { _ = write(2, alarmExit.message, alarmExit.count) }
            _exit(alarmExit.code)
        }
        sigprocmask(SIG_SETMASK, &saved, nil)
    }
}

/// What the SIGALRM handler of Sys.exitOnAlarm writes and exits with.
private struct AlarmExit {
    var code: Int32
    var message: UnsafeMutablePointer<UInt8>?
    var count: Int
}

nonisolated(unsafe) private var alarmExit = AlarmExit(code: 0, message: nil, count: 0)
