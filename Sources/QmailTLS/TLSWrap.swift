// tlswrap's entry point: handshake, relay, exec.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum TLSWrap {
    public static func main(_ args: [String]) -> Int32 {
        guard !args.isEmpty else {
            Sys.warn("tlswrap: usage: tlswrap program [ arg ... ]")
            return QmailExit.permanent
        }
        let control = QmailHome.current().control
        let ctx: TLSContext
        do {
            guard let c = try TLSContext.server(controlDir: control) else {
                Sys.warn("tlswrap: fatal: no certificate: \(control)/servercert.pem does not exist")
                return QmailExit.temporary
            }
            ctx = c
        } catch {
            Sys.warn("tlswrap: fatal: \(error)")
            return QmailExit.temporary
        }
        alarm(1200)  // a client that never finishes the handshake
        do {
            let tls = try TLSConnection(context: ctx, readFD: 0, writeFD: 1)
            alarm(0)
            if case .relayEnded(let code) = try tls.relayStdio() { return code }
        } catch {
            Sys.warn("tlswrap: \(error)")
            return QmailExit.temporary
        }
        let e = ChildProcess.exec(.init(args))
        Sys.warn("tlswrap: fatal: \(e)")
        return QmailExit.temporary
    }
}
