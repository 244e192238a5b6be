// The one way these programs fail: temporary or permanent (the kind of
// QmailCore's MailFailure) and the text printed after "PROGRAM: fatal: ".
// runMain turns the kind into qmail's exit code (100 permanent, 111
// temporary). Kinds follow djb's programs exactly, including the ones that
// look odd (newaliases refuses a syntax error as temporary).
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct ForwardFatal: Error, CustomStringConvertible {
    public let kind: MailFailure.Kind
    public let message: String
    /// When true the message is printed without the "fatal: " prefix (usage lines, bounces).
    public let bare: Bool

    public init(_ kind: MailFailure.Kind, _ message: String, bare: Bool = false) {
        self.kind = kind
        self.message = message
        self.bare = bare
    }

    public static func temporary(_ message: String, bare: Bool = false) -> ForwardFatal {
        ForwardFatal(.temporary, message, bare: bare)
    }

    public static func permanent(_ message: String, bare: Bool = false) -> ForwardFatal {
        ForwardFatal(.permanent, message, bare: bare)
    }

    /// The same failure with another message (a line number put in front).
    func with(message: String) -> ForwardFatal { ForwardFatal(kind, message, bare: bare) }

    public var isTemporary: Bool { kind == .temporary }

    /// qmail's exit code for this failure: 111 temporary, 100 permanent.
    public var exitCode: Int32 { QmailExit.failure(temporary: isTemporary) }

    public var description: String { message }

    /// Placeholder thrown by the address-list walker; callers turn it into
    /// their own "unable to parse this line" with the line.
    static let parseError = ForwardFatal.temporary("unable to parse")

    public static let noMemory = ForwardFatal.temporary("out of memory")
}

/// Runs a program body and maps its outcome to an exit code, printing
/// "NAME: fatal: message" for failures.
public func runMain(_ name: String, _ body: () throws -> Int32) -> Int32 {
    do {
        return try body()
    } catch let f as ForwardFatal {
        if !f.message.isEmpty { Sys.warn(f.bare ? f.message : "\(name): fatal: \(f.message)") }
        return f.exitCode
    } catch {
        Sys.warn("\(name): fatal: \(error)")
        return QmailExit.temporary
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
