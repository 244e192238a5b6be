// STARTTLS for qmail-smtpd (server side, QmailTLS with control/servercert.pem)
// and opportunistic STARTTLS for qmail-remote (client side, no certificate
// check: the alternative is plaintext, not a bounce).
#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import QmailCore
import QmailNet
import QmailTLS

/// Timeouts inside OpenSSL's blocking reads and writes come from the socket
/// options.
func setSocketTimeouts(_ fds: [Int32], seconds: Int) {
    for fd in Set(fds) { Sys.setSocketTimeouts(fd, receive: seconds, send: seconds) }
}

/// Loads OpenSSL and the certificate only when a client asks for STARTTLS:
/// most SMTP sessions never do, and both cost every connection otherwise.
final class ServerStarter: TLSServerStarter {
    let controlDir: String
    var context: TLSContext?
    init(controlDir: String) { self.controlDir = controlDir }

    func prepare() -> Bool {
        do {
            context = try TLSContext.server(controlDir: controlDir)
        } catch {
            Sys.warn("qmail-smtpd: STARTTLS refused: \(error)")
        }
        return context != nil
    }

    func start(over stream: ByteStream, timeout: Int) throws -> ByteStream {
        guard let fds = stream as? FdStream, let context else { throw ChannelError.io(EINVAL) }
        setSocketTimeouts([fds.inFd, fds.outFd], seconds: timeout)
        return TLSStream(try TLSConnection(context: context, readFD: fds.inFd, writeFD: fds.outFd))
    }
}

public enum SMTPTLS {
    /// The STARTTLS starter when control/servercert.pem exists; nil (no
    /// STARTTLS offered) otherwise.
    public static func starter(home: QmailHome) -> TLSServerStarter? {
        Sys.exists(home.control + "/servercert.pem") ? ServerStarter(controlDir: home.control) : nil
    }

    /// The client starter for qmail-remote; nil when OpenSSL cannot set up.
    public static func client() -> TLSClientStarter? {
        guard qossl_ssl_unavailable() == nil, let ctx = qossl_SSL_CTX_new(qossl_TLS_client_method()) else { return nil }
        _ = qtls_set_min_tls12(ctx)
        qossl_SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        return ClientStarter(ctx)
    }
}

final class ClientTLSStream: ByteStream {
    let ssl: OpaquePointer
    let fd: Int32
    init(ssl: OpaquePointer, fd: Int32) { self.ssl = ssl; self.fd = fd }
    deinit { qossl_SSL_free(ssl) }
    var hasPending: Bool { qossl_SSL_pending(ssl) > 0 }

    func read(_ buf: UnsafeMutableRawPointer, _ count: Int, timeout: Int) throws -> Int {
        while true {
            let n = qossl_SSL_read(ssl, buf, Int32(min(count, 1 << 30)))
            if n > 0 { return Int(n) }
            let err = qossl_SSL_get_error(ssl, n)
            if err == SSL_ERROR_ZERO_RETURN { return 0 }
            if err == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ChannelError.timeout }
            if err == SSL_ERROR_SYSCALL && qossl_ERR_peek_error() == 0 { return 0 }
            throw ChannelError.io(EIO)
        }
    }

    func write(_ buf: UnsafeRawPointer, _ count: Int, timeout: Int) throws {
        var done = 0
        while done < count {
            let n = qossl_SSL_write(ssl, buf + done, Int32(min(count - done, 1 << 20)))
            if n > 0 { done += Int(n); continue }
            if qossl_SSL_get_error(ssl, n) == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ChannelError.timeout }
            throw ChannelError.io(EIO)
        }
    }
}

final class ClientStarter: TLSClientStarter {
    let ctx: OpaquePointer
    init(_ c: OpaquePointer) { ctx = c }
    deinit { qossl_SSL_CTX_free(ctx) }

    func start(fd: Int32, serverName: [UInt8], timeout: Int) throws -> ByteStream {
        setSocketTimeouts([fd], seconds: timeout)
        guard let ssl = qossl_SSL_new(ctx) else { throw ChannelError.io(ENOMEM) }
        qossl_SSL_set_fd(ssl, fd)
        if !serverName.isEmpty, serverName.first != 91, IPAddress(serverName.string) == nil {
            // SSL_set_tlsext_host_name is a macro around SSL_ctrl.
            var name = serverName.map { CChar(bitPattern: $0) } + [0]
            _ = qossl_SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), &name)
        }
        while true {
            let r = qossl_SSL_connect(ssl)
            if r == 1 { break }
            if qossl_SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL && errno == EINTR { continue }
            qossl_SSL_free(ssl)
            throw ChannelError.io(EPROTO)
        }
        return ClientTLSStream(ssl: ssl, fd: fd)
    }
}
