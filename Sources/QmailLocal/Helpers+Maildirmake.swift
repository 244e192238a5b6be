// maildirmake: makes an empty Maildir.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

extension Helpers {
    public static func maildirmake(_ argv: [[UInt8]]) -> Int32 {
        umask(0o077)
        guard argv.count >= 2 else { return fail(QmailExit.permanent, "maildirmake: usage: maildirmake name") }
        let dir = argv[1]
        for (sub, what) in [([UInt8](), "mkdir "), (Array("/tmp".utf8), "mkdir "), (Array("/new".utf8), "mkdir "),
                            (Array("/cur".utf8), "mkdir ")] {
            let path = dir + sub
            if BytePath.with(path, { Glibc.mkdir($0, 0o700) }) != 0 {
                return fail(QmailExit.temporary, "maildirmake: fatal: unable to \(what)\(path.string): \(Sys.strerror(errno))")
            }
        }
        return 0
    }
}
