// Compiled into every fuzz target (scripts/fuzz.sh): a broken invariant is
// a finding, reported as a crash with its reason; and a scratch file, for
// code under test that must read a real descriptor.
#if canImport(Glibc)
import Glibc
#endif

func check(_ ok: Bool, _ what: String) {
    if !ok { fatalError("invariant broken: " + what) }
}

/// The process's scratch file: unlinked, made at first use.
nonisolated(unsafe) var scratch: Int32 = -1

func scratchFd() -> Int32 {
    if scratch < 0 {
        var name = Array("/tmp/fuzz-scratch-XXXXXX".utf8CString)
        scratch = mkstemp(&name)
        precondition(scratch >= 0)
        unlink(name)
    }
    return scratch
}

/// The scratch file holding exactly `bytes`, positioned at its start.
func scratchHolding<C: Collection>(_ bytes: C) -> Int32 where C.Element == UInt8 {
    let fd = scratchFd()
    ftruncate(fd, 0)
    let b = Array(bytes)
    let n = b.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    precondition(n == b.count)
    lseek(fd, 0, SEEK_SET)
    return fd
}
