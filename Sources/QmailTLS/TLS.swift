// Server-side TLS over a connection's file descriptors, for STLS/STARTTLS
// and for implicit TLS (pop3s, smtps), with the system OpenSSL; and the
// client side qmail-pop3proxy uses towards a home host.
//
// Certificate and key come from control/servercert.pem (both in one PEM
// file, as the netqmail TLS patches use it); control/tlsserverciphers may
// replace the TLS 1.2 cipher list. Only TLS 1.2 and 1.3 are offered.
//
// Two ways to use a session:
// - in process: `TLSConnection.read`/`write` (a server that keeps the
//   connection itself, e.g. qmail-smtpd after STARTTLS);
// - `relayStdio()`: the process forks; the parent keeps the TLS session and
//   relays bytes, the child continues with plain fds 0 and 1 on a socket
//   pair. Programs that exec others after TLS starts (qmail-popup ->
//   checkpassword -> qmail-pop3d) need that: TLS state does not survive exec.
//
// STARTTLS in a server that keeps the connection (after sending "220 ready"
// in one write and with no unread plain input buffered):
//   guard let ctx = try TLSContext.server(controlDir: home.control) else { /* no TLS */ }
//   let tls = try TLSConnection(context: ctx, readFD: 0, writeFD: 1)
//   n = try tls.read(buf, count)   // 0: peer closed
//   try tls.write(bytes)           // one call per reply
//   tls.close()
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import QmailCore
import QmailNet

public enum TLSError: Error, CustomStringConvertible {
    case setup(String)
    case handshake(String)
    case io(String)

    public var description: String {
        switch self {
        case .setup(let s): return "TLS setup failed: \(s)"
        case .handshake(let s): return "TLS handshake failed: \(s)"
        case .io(let s): return "TLS I/O failed: \(s)"
        }
    }

    static func lastError() -> String {
        let e = qossl_ERR_get_error()
        if e == 0 { return "unknown error" }
        var buf = [CChar](repeating: 0, count: 256)
        qossl_ERR_error_string_n(e, &buf, buf.count)
        return String(cString: buf)
    }
}

/// Certificate, key and protocol settings shared by the sessions.
public final class TLSContext {
    let ctx: OpaquePointer
    /// A client context that checks the server's certificate.
    let verifiesPeer: Bool

    /// Strong TLS 1.2 ciphers (forward secrecy, AEAD); TLS 1.3 uses OpenSSL's suites.
    public static let defaultCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"

    /// The server context from `controlDir`/servercert.pem, or nil when that
    /// file does not exist (TLS not configured).
    public static func server(controlDir: String) throws -> TLSContext? {
        let cert = controlDir + "/servercert.pem"
        if !Sys.exists(cert) { return nil }
        let key = Sys.exists(controlDir + "/serverkey.pem") ? controlDir + "/serverkey.pem" : cert
        var ciphers = defaultCiphers
        if let line = try? Control(directory: controlDir).line("tlsserverciphers"), !line.isEmpty {
            ciphers = line.string
        }
        return try TLSContext(certificate: cert, key: key, ciphers: ciphers)
    }

    /// Throws when the system's libssl cannot be loaded (shim.h loads it at
    /// the first TLS set-up, not at each exec).
    static func requireLibrary() throws {
        if let why = qossl_ssl_unavailable() { throw TLSError.setup(String(cString: why)) }
    }

    public init(certificate: String, key: String, ciphers: String = TLSContext.defaultCiphers) throws {
        try TLSContext.requireLibrary()
        guard let c = qossl_SSL_CTX_new(qossl_TLS_server_method()) else { throw TLSError.setup(TLSError.lastError()) }
        ctx = c
        verifiesPeer = false
        guard qtls_set_min_tls12(c) == 1 else { throw TLSError.setup("cannot require TLS 1.2") }
        qtls_set_server_options(c)
        _ = qtls_set_session_cache_off(c)
        guard qossl_SSL_CTX_set_cipher_list(c, ciphers) == 1 else { throw TLSError.setup("bad cipher list \(ciphers)") }
        guard qossl_SSL_CTX_use_certificate_chain_file(c, certificate) == 1 else {
            throw TLSError.setup("unable to load certificate \(certificate): \(TLSError.lastError())")
        }
        guard qossl_SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.setup("unable to load key \(key): \(TLSError.lastError())")
        }
        guard qossl_SSL_CTX_check_private_key(c) == 1 else { throw TLSError.setup("key does not match certificate") }
    }

    /// A client context (TLS 1.2 and later). With `caFile` (PEM), servers
    /// must show a certificate it signed, for the name connected to; without,
    /// any certificate is taken (encryption only, against listeners).
    public init(clientCAFile caFile: String?) throws {
        try TLSContext.requireLibrary()
        guard let c = qossl_SSL_CTX_new(qossl_TLS_client_method()) else { throw TLSError.setup(TLSError.lastError()) }
        ctx = c
        verifiesPeer = caFile != nil
        guard qtls_set_min_tls12(c) == 1 else { throw TLSError.setup("cannot require TLS 1.2") }
        if let caFile {
            guard qossl_SSL_CTX_load_verify_locations(c, caFile, nil) == 1 else {
                throw TLSError.setup("unable to load CA file \(caFile): \(TLSError.lastError())")
            }
            qossl_SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nil)
        } else {
            qossl_SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nil)
        }
    }

    deinit { qossl_SSL_CTX_free(ctx) }
}

/// One TLS session over (readFD, writeFD), server or client side.
public final class TLSConnection {
    let ssl: OpaquePointer
    let context: TLSContext
    public let readFD: Int32
    public let writeFD: Int32

    /// The server side: runs the handshake; throws when it fails.
    public convenience init(context: TLSContext, readFD: Int32 = 0, writeFD: Int32 = 1) throws {
        try self.init(context, readFD: readFD, writeFD: writeFD, serverName: nil)
    }

    /// The client side over a connected socket `fd`: sends `serverName` as
    /// SNI and, when the context verifies peers, requires a certificate for
    /// that name from its CA file.
    public convenience init(connectingWith context: TLSContext, fd: Int32, serverName: String) throws {
        try self.init(context, readFD: fd, writeFD: fd, serverName: serverName)
    }

    /// A server when `serverName` is nil, else a client.
    private init(_ context: TLSContext, readFD: Int32, writeFD: Int32, serverName: String?) throws {
        guard let s = qossl_SSL_new(context.ctx) else { throw TLSError.setup(TLSError.lastError()) }
        ssl = s
        self.context = context
        self.readFD = readFD
        self.writeFD = writeFD
        qossl_SSL_set_rfd(s, readFD)
        qossl_SSL_set_wfd(s, writeFD)
        signal(SIGPIPE, SIG_IGN)
        if let name = serverName {
            _ = qtls_set_sni(s, name)
            if context.verifiesPeer && qossl_SSL_set1_host(s, name) != 1 { throw TLSError.setup("bad host name \(name)") }
        }
        while true {
            let r = serverName == nil ? qossl_SSL_accept(s) : qossl_SSL_connect(s)
            if r == 1 { break }
            let err = qossl_SSL_get_error(s, r)
            if err == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            guard let name = serverName else { throw TLSError.handshake(TLSError.lastError()) }
            let verify = qossl_SSL_get_verify_result(s)
            if verify != X509_V_OK {
                throw TLSError.handshake("certificate of \(name): " + String(cString: qossl_X509_verify_cert_error_string(verify)))
            }
            throw TLSError.handshake(err == SSL_ERROR_SYSCALL && qossl_ERR_peek_error() == 0
                                     ? "connection closed (\(Sys.strerror(errno)))" : TLSError.lastError())
        }
    }

    deinit { qossl_SSL_free(ssl) }

    public var protocolName: String { String(cString: qossl_SSL_get_version(ssl)) }
    public var cipherName: String { qossl_SSL_CIPHER_get_name(qossl_SSL_get_current_cipher(ssl)).map { String(cString: $0) } ?? "" }

    /// Reads decrypted bytes; 0 means the peer closed.
    public func read(_ buf: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        while true {
            let n = qossl_SSL_read(ssl, buf, Int32(min(count, Int(Int32.max))))
            if n > 0 { return Int(n) }
            let err = qossl_SSL_get_error(ssl, n)
            if err == SSL_ERROR_ZERO_RETURN { return 0 }
            if err == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            if err == SSL_ERROR_SYSCALL && qossl_ERR_peek_error() == 0 { return 0 }  // EOF without close_notify
            throw TLSError.io(TLSError.lastError())
        }
    }

    /// Encrypts and writes every byte.
    public func write(_ buf: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            let n = qossl_SSL_write(ssl, buf + done, Int32(min(count - done, 1 << 20)))
            if n > 0 { done += Int(n); continue }
            let err = qossl_SSL_get_error(ssl, n)
            if err == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            throw TLSError.io(TLSError.lastError())
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { if let b = $0.baseAddress { try write(b, $0.count) } }
    }

    /// Sends close_notify.
    public func close() { _ = qossl_SSL_shutdown(ssl) }

    /// Decrypted bytes wait inside OpenSSL (poll does not see them).
    public var hasPendingInput: Bool { qossl_SSL_pending(ssl) > 0 }

    /// Which process returned from relayStdio.
    public enum RelaySide: Equatable {
        /// The child: goes on with the session in plain text.
        case session
        /// The parent, its relaying done: its program's main exits with
        /// this code, the session's (a signal's as a shell reports it).
        case relayEnded(exitCode: Int32)
    }

    /// Hands the session to a relay process: forks; in the parent, relays
    /// between the TLS connection and a socket pair until both sides are
    /// done, then returns the child's exit code; in the child returns
    /// `.session`, with fds 0 and 1 now the plain end of the socket pair and
    /// SSL_PROTOCOL and SSL_CIPHER in the environment (as ucspi-ssl sets them).
    public func relayStdio() throws -> RelaySide {
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &sv) == 0 else { throw SysError("socketpair") }
        let pid = try ChildProcess.forkChild()
        if pid == 0 {
            Glibc.close(sv[0])
            if dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0 { throw SysError("dup2") }
            if sv[1] > 1 { Glibc.close(sv[1]) }
            setenv("SSL_PROTOCOL", protocolName, 1)
            setenv("SSL_CIPHER", cipherName, 1)
            signal(SIGPIPE, SIG_DFL)
            return .session
        }
        Glibc.close(sv[1])
        // The relay has its own idle limit; an alarm left from the plain
        // part of the session must not end it.
        alarm(0)
        relay(local: sv[0])
        Glibc.close(sv[0])
        return .relayEnded(exitCode: ChildProcess.wait(pid)?.shellCode ?? QmailExit.temporary)
    }

    func relay(local: Int32) {
        Relay.run(PlainPeer(readFD: local, writeFD: local), self) {
            // The client is gone: the program reads end of input and ends.
            shutdown(local, Int32(SHUT_WR))
            return true
        }
        close()
    }
}

extension TLSConnection: RelayPeer {
    public var pollFD: Int32 { readFD }
    public func relayRead(_ buf: UnsafeMutableRawPointer, _ count: Int) -> Int { max(0, (try? read(buf, count)) ?? 0) }
    public func relayWrite(_ buf: UnsafeRawPointer, _ count: Int) -> Bool { (try? write(buf, count)) != nil }
}

/// A TLS session as a Channel's stream. OpenSSL's blocking reads and writes
/// end by the socket's own timeouts (Sys.setSocketTimeouts). With a
/// deadline, each read waits only for what is left of it, so a peer that
/// trickles bytes gains nothing.
public final class TLSStream: ByteStream {
    public let connection: TLSConnection
    /// Seconds since the epoch by which a read must be done; 0: none.
    public var deadline = 0

    public init(_ c: TLSConnection) { connection = c }

    /// Decrypted bytes OpenSSL holds (a pipelining client's next request):
    /// the Channel then reads on before it flushes its answers.
    public var hasPending: Bool { connection.hasPendingInput }

    public func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int {
        if deadline > 0 {
            let left = deadline - Sys.now()
            guard left > 0 else { throw ChannelError.timeout }
            Sys.setSocketTimeouts(connection.readFD, receive: left, send: nil)
        }
        do { return try connection.read(buf, count) } catch {
            throw (errno == EAGAIN || errno == EWOULDBLOCK) ? ChannelError.timeout : ChannelError.io(errno)
        }
    }

    public func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws {
        do { try connection.write(buf, count) } catch {
            throw (errno == EAGAIN || errno == EWOULDBLOCK) ? ChannelError.timeout : ChannelError.io(errno)
        }
    }
}
