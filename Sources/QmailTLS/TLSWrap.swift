// tlswrap's entry point: handshake, relay, exec.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum TLSWrap {
    public static func main(_ args: [String]) -> Int32 {
        guard !args.isEmpty else {
            Sys.warn("tlswrap: usage: tlswrap program [ arg ... ]")
            return 100
        }
        let control = QmailHome.current().control
        let ctx: TLSContext
        do {
            guard let c = try TLSContext.server(controlDir: control) else {
                Sys.warn("tlswrap: fatal: no certificate: \(control)/servercert.pem does not exist")
                return 111
            }
            ctx = c
        } catch {
            Sys.warn("tlswrap: fatal: \(error)")
            return 111
        }
        alarm(1200)  // a client that never finishes the handshake
        do {
            let tls = try TLSConnection(context: ctx, readFD: 0, writeFD: 1)
            alarm(0)
            try tls.relayStdio()
        } catch {
            Sys.warn("tlswrap: \(error)")
            return 111
        }
        let e = ChildProcess.exec(.init(args))
        Sys.warn("tlswrap: fatal: \(e)")
        return 111
    }
}
