// qmail-inject as a program: reads the message on fd 0, writes the new
// header and streams the body into qmail-queue (or to fd 1 with -n), then
// hands over the envelope. Exit codes per qmail-inject(8): 0, 100 for bad
// usage or a bad message, 111 for temporary trouble.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

/// Where the rewritten message goes.
protocol MessageSink: AnyObject {
    func put(_ bytes: [UInt8])
    func put(_ raw: UnsafeRawBufferPointer)
}

/// Into qmail-queue through a QueueClient.
final class QueueClientSink: MessageSink {
    let client: QueueClient
    init(_ c: QueueClient) { client = c }
    func put(_ bytes: [UInt8]) { client.put(bytes) }
    func put(_ raw: UnsafeRawBufferPointer) { client.put(raw) }
}

final class WriterSink: MessageSink {
    let writer: ByteWriter
    var failed = false
    init(fd: Int32) { writer = ByteWriter(fd: fd, capacity: 65536) }
    func put(_ bytes: [UInt8]) {
        if failed { return }
        do { try writer.put(bytes) } catch { failed = true }
    }
    func put(_ raw: UnsafeRawBufferPointer) {
        if failed { return }
        do { try writer.put(raw) } catch { failed = true }
    }
    func flush() -> Bool {
        if !failed { do { try writer.flush() } catch { failed = true } }
        return !failed
    }
}

public enum QmailInjectProgram {
    /// Runs qmail-inject with `args` (without the program name); returns the exit code.
    public static func main(_ args: [String]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        do {
            try run(args)
            return QmailExit.success
        } catch let f as InjectFailure {
            Sys.warn(f.description)
            return f.exitCode
        } catch {
            Sys.warn("qmail-inject: fatal: \(error)")
            return QmailExit.temporary
        }
    }

    static func run(_ args: [String]) throws {
        let startTime = Sys.now()
        let env: (String) -> String? = { Sys.getenv($0) }
        let settings = try InjectSettings.from(environment: env)
        let home = QmailHome.current()
        let domains: InjectDomains
        do { domains = try InjectDomains.load(control: Control(home: home), environment: env) } catch {
            throw InjectFailure.controls
        }
        let options = try InjectOptions.parse(args)
        let injector = try Injector(settings: settings, domains: domains, options: options, startTime: startTime)

        let input = ByteReader(fd: 0, capacity: 65536)
        let end = try injector.readHeader(input)
        let header = try injector.finishHeader()

        if !options.queue {
            let out = WriterSink(fd: 1)
            out.put(header)
            try streamBody(end, input, out)
            if !out.flush() { throw InjectFailure.writeError }
            return
        }
        let client: QueueClient
        do { client = try QueueClient(program: QueueClient.program(home: home, honourEnvironment: true)) } catch {
            throw InjectFailure.queueStart
        }
        let sink = QueueClientSink(client)
        sink.put(header)
        do {
            try streamBody(end, input, sink)
        } catch {
            // Give the queue an incomplete message and no envelope end:
            // closing without "from" makes qmail-queue refuse it.
            _ = client.close()
            throw error
        }
        client.from(injector.sender ?? [])
        for r in injector.recipients { client.to(r) }
        if let f = client.close() { throw InjectFailure.queue(f) }
    }

    /// Copies the rest of the input as the body, ending it with a newline
    /// as qmail does when the last line has none.
    static func streamBody(_ end: HeaderEnd, _ input: ByteReader, _ sink: MessageSink) throws {
        guard case .body(let start) = end else { return }
        sink.put(start)
        var last = start.last ?? Ascii.lf
        do {
            try input.forEachChunk { chunk in
                if let l = chunk.last { last = l }
                sink.put(chunk)
            }
        } catch {
            throw InjectFailure.readError
        }
        if last != Ascii.lf { sink.put([Ascii.lf]) }
    }
}
