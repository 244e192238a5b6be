// The one way these programs fail: an exit code with qmail's meaning (0
// done, 99 done and skip the rest of .qmail, 100 permanent, 111 temporary)
// and the text printed after "PROGRAM: fatal: ". Exit codes follow djb's
// programs exactly, including the ones that look odd (newaliases refuses a
// syntax error with 111).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct ForwardFatal: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    /// When true the message is printed without the "fatal: " prefix (usage lines, bounces).
    public let bare: Bool

    public init(_ code: Int32, _ message: String, bare: Bool = false) {
        self.code = code
        self.message = message
        self.bare = bare
    }

    public var description: String { message }

    /// Placeholder thrown by the address-list walker; callers turn it into
    /// their own "unable to parse this line" with the line.
    static let parseError = ForwardFatal(111, "unable to parse")

    public static let noMemory = ForwardFatal(111, "out of memory")
}

/// Runs a program body and maps its outcome to an exit code, printing
/// "NAME: fatal: message" for failures.
public func runMain(_ name: String, _ body: () throws -> Int32) -> Int32 {
    do {
        return try body()
    } catch let f as ForwardFatal {
        if !f.message.isEmpty { Sys.warn(f.bare ? f.message : "\(name): fatal: \(f.message)") }
        return f.code
    } catch {
        Sys.warn("\(name): fatal: \(error)")
        return 111
    }
}

/// djb's getopt: clustered single-letter flags; an argument starting with
/// "--" ends them and is dropped; the first non-flag argument ends them. Returns the flags in order and the rest.
/// (Works on bytes: Character handling would drag in Unicode tables at
/// every exec.)
func getopt(_ argv: [String], _ allowed: String) -> (flags: [UInt8], rest: [String])? {
    let ok = Array(allowed.utf8)
    var flags: [UInt8] = []
    var i = 1
    while i < argv.count {
        let a = Array(argv[i].utf8)
        if a.count >= 2 && a[0] == 45 && a[1] == 45 { i += 1; break }
        if a.count < 2 || a[0] != 45 { break }
        for c in a.dropFirst() {
            guard ok.contains(c) else { return nil }
            flags.append(c)
        }
        i += 1
    }
    return (flags, Array(argv[min(i, argv.count)...]))
}

/// Bytes of a C string environment variable, nil when unset.
func env(_ name: String) -> [UInt8]? {
    guard let p = getenv(name) else { return nil }
    return Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
}

/// A path from bytes (NUL-free by construction of its callers).
func pathString(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

extension Sys {
    /// Writes text to standard error as is (no newline added).
    static func warnRaw(_ s: String) {
        _ = try? Sys.writeAll(2, Array(s.utf8))
    }
}
