// except: runs a program and turns its success into a bounce.
import QmailCore

extension Helpers {
    public static func except(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else { return fail(100, "except: usage: except program [ arg ... ]") }
        guard let c = runChild(Array(argv[1...]), prog: "except") else { return 111 }
        if c == 0 { return 100 }
        if c == 111 { return fail(111, "except: fatal: temporary child error") }
        return 0
    }
}
