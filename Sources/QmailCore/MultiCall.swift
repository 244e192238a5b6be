// One executable file for many programs, as busybox does: HOME/bin holds
// the file under each program's name, and the last component of argv[0]
// picks the program. Every Swift executable carries the whole Swift runtime
// (about 6 MB even stripped), so ~90 separate programs made HOME/bin 650 MB;
// grouped into a few such files it is a tenth of that. Setuid programs
// never dispatch this way: argv[0] is their caller's to choose
// (Package.swift keeps them apart).
#if canImport(Glibc)
import Glibc
#endif

public enum MultiCall {
    // The dispatch itself is each file's `switch` (Sources/Programs/*/main.swift):
    // a table of closures would cost every exec the run-time instantiation of
    // its generic type, more than the whole dispatch.

    /// The program argv[0] names: its last component.
    public static var program: String { FileIO.baseName(CommandLine.arguments.first ?? "") }

    /// For a program qmail installs with mode 0700 (Programs.all): a file
    /// that many programs share has one mode, so the rule is kept here.
    /// Exits 126 (as a shell does for a file it may not run) unless we are
    /// root or the owner of the running file.
    public static func ownerOnly(_ binary: String) {
        let uid = getuid()
        if uid == 0 { return }
        if let st = try? Sys.stat("/proc/self/exe"), st.st_uid == uid { return }
        Sys.warn("\(program): permission denied: only root and the owner of \(binary) may run it")
        Sys.exit(126)
    }

    /// True when `path` is the running file itself under the name
    /// `program`: a program of this file that a parent may run in its own
    /// (forked) process instead of an exec. A file replaced since we
    /// started is another file (the new one is exec'd).
    public static func isRunningFile(_ path: String, named program: String) -> Bool {
        guard path.hasPrefix("/"), FileIO.baseName(path) == program,
              let named = try? Sys.stat(path), let running = try? Sys.stat("/proc/self/exe") else { return false }
        return (named.st_mode & S_IFMT) == S_IFREG && named.st_dev == running.st_dev && named.st_ino == running.st_ino
    }

    /// A program's entry returned: exit 0, as a main.swift that ends.
    public static func done() -> Never { Sys.exitFlushing(0) }

    /// argv[0] names none of `programs`: run under its own name (`binary`)
    /// with `--list`, prints them, one a line; otherwise says so, exit 100.
    public static func other(_ binary: String, _ programs: [String]) -> Never {
        if program == binary && CommandLine.arguments.dropFirst().first == "--list" {
            Sys.exitFlushing((try? Sys.writeAll(1, Array(programs.map { $0 + "\n" }.joined().utf8))) == nil ? 111 : 0)
        }
        Sys.warn("\(binary): unknown program name \(program) (\(binary) --list names the programs it holds)")
        Sys.exit(100)
    }
}
