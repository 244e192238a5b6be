// qmail-webadmin: the web administration, over HTTPS with the certificate
// of POP3S and SMTPS (control/servercert.pem, control/serverkey.pem when
// present; TLS 1.2 at least), on 127.0.0.1 unless control/webadminlisten
// names another address. It runs as whoever runs the v* commands (root,
// or the owner of a single-user home): every change goes through their
// library (VHosting's Admin), in this process.
//   qmail-webadmin [-l address] [-p port]
// Port: -p, else control/webadminport, else 8443.
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import HummingbirdTLS
import NIOSSL
import QmailCore

public enum WebAdmin {
    public static let defaultPort = 8443
    static let usage = "usage: qmail-webadmin [-l address] [-p port]"

    public struct Settings {
        public var address = "127.0.0.1"
        public var port = WebAdmin.defaultPort
    }

    /// Options over control files over defaults.
    static func settings(_ args: [String], home: QmailHome) throws -> Settings {
        var s = Settings()
        let control = Control(home: home)
        if let l = try control.line("webadminlisten"), !l.isEmpty { s.address = l.string }
        if let p = try control.line("webadminport"), !p.isEmpty {
            guard let n = Decimal.parse(p), (1...65535).contains(n) else { throw SettingsError("control/webadminport: bad port \(p.string)") }
            s.port = n
        }
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a == "-l" || a == "-p", i + 1 < args.count else { throw SettingsError(usage) }
            let v = args[i + 1]
            if a == "-l" { s.address = v } else {
                guard let n = Decimal.parse(Array(v.utf8)), (0...65535).contains(n) else { throw SettingsError("bad port \(v)") }
                s.port = n
            }
            i += 2
        }
        return s
    }

    struct SettingsError: Error, CustomStringConvertible {
        let description: String
        init(_ s: String) { description = s }
    }

    /// The server's TLS settings from the qmail home's certificate files.
    static func tls(home: QmailHome) throws -> TLSConfiguration {
        let cert = home.control("servercert.pem")
        guard Sys.exists(cert) else {
            throw SettingsError("no \(cert): make one (contrib/pop3/make-servercert.sh) or install the host's certificate")
        }
        let keyFile = Sys.exists(home.control("serverkey.pem")) ? home.control("serverkey.pem") : cert
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(cert).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            var c = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            c.minimumTLSVersion = .tlsv12
            return c
        } catch {
            throw SettingsError("unable to load \(cert): \(error)")
        }
    }

    public static func main(_ args: [String]) async -> Int32 {
        umask(0o022)
        let home = QmailHome.current()
        let settings: Settings
        let tls: TLSConfiguration
        do {
            settings = try WebAdmin.settings(args, home: home)
            tls = try WebAdmin.tls(home: home)
        } catch let e as SettingsError {
            Sys.warn("qmail-webadmin: fatal: \(e)")
            return e.description == usage ? QmailExit.permanent : QmailExit.temporary
        } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            return QmailExit.temporary
        }
        let web = WebApp(home: home)
        let router = Router(context: WebContext.self)
        web.routes(router)
        do {
            let app = Application(router: router, server: try .tls(.http1(), tlsConfiguration: tls),
                                  configuration: .init(address: .hostname(settings.address, port: settings.port), serverName: nil),
                                  onServerRunning: { channel in
                                      let port = channel.localAddress?.port ?? settings.port
                                      Sys.warn("qmail-webadmin: listening on https://\(settings.address.contains(":") ? "[\(settings.address)]" : settings.address):\(port)/")
                                  })
            try await app.runService()
        } catch {
            Sys.warn("qmail-webadmin: fatal: \(error)")
            return QmailExit.temporary
        }
        return 0
    }
}
