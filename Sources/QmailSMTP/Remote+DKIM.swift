// qmail-remote's DKIM signing. Before it connects, qmail-remote reads the
// message through the same SMTPDataEncoder that blast() sends it with, so
// the signature covers exactly the text that goes out; the DKIM-Signature
// fields are then sent in front of it. The key is that of the From:
// domain, or of its nearest parent with keys (HOME/control/dkim, see
// DKIMKeyStore). A site without control/dkim does not sign, and its
// qmail-remote reads the message once, as qmail's does.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailDKIM

public struct RemoteSigning {
    public let store: DKIMKeyStore
    /// control/locals and control/virtualdomains: mail from these domains
    /// that goes out unsigned is noted in the delivery report.
    public let hosted: DomainMap<Void>

    public static func load(home: QmailHome, control: Control) throws -> RemoteSigning? {
        let store = DKIMKeyStore(home: home)
        guard Sys.isDirectory(store.directory) else { return nil }
        var hosted = DomainMap<Void>(lines: try control.list("locals"))
        for l in try control.list("virtualdomains") {
            guard let c = l.firstIndex(of: Ascii.colon), c > 0, !l[..<c].contains(Ascii.at) else { continue }
            hosted.insert(Array(l[..<c]), ())
        }
        return RemoteSigning(store: store, hosted: hosted)
    }
}

/// What qmail-remote learned about the message before connecting.
struct OutgoingMessage {
    /// DKIM-Signature fields, sent in front of the message.
    var signatures: [UInt8] = []
    /// Bytes read from a descriptor that cannot be rewound (a pipe).
    var held: [UInt8] = []
    /// A line for the delivery report, and so for qmail-send's log.
    var note: String? = nil
}

/// Ends the first pass early: the message needs no body hash.
private struct NoSignature: Error {}

extension Remote {
    func prepareSignatures(_ input: Int32, _ dkim: RemoteSigning) throws {
        let seekable = lseek(input, 0, SEEK_CUR) == 0
        let reader = ByteReader(fd: input, capacity: 65536)
        var encoder = SMTPDataEncoder()
        var scanner = DKIMWireScanner()
        var wire: [UInt8] = []
        var keys: [DKIMSigningKey]? = nil
        var domain = ""
        var held: [UInt8] = []
        do {
            try reader.forEachChunk { chunk in
                if !seekable { held += chunk }
                wire.removeAll(keepingCapacity: true)
                encoder.encode(chunk, into: &wire)
                scanner.feed(wire)
                if keys == nil && !scanner.inHeader {
                    keys = try signingKeys(scanner.header, dkim, &domain)
                    if keys!.isEmpty { throw NoSignature() }
                }
            }
        } catch is NoSignature {
        } catch let done as RemoteDone {
            throw done
        } catch {
            throw fail("ZUnable to read message. (#4.3.0)\n")
        }
        // A message without a body has no blank line to end its header.
        if keys == nil { keys = try signingKeys(scanner.header, dkim, &domain) }
        if seekable {
            if lseek(input, 0, SEEK_SET) != 0 { throw fail("ZUnable to read message. (#4.3.0)\n") }
        } else {
            outgoing.held = held
        }
        guard let keys, !keys.isEmpty else {
            if !domain.isEmpty && dkim.hosted.containsHost(Array(domain.utf8)) {
                outgoing.note = "DKIM: no key for \(domain), sent unsigned.\n"
            }
            return
        }
        // blast() refuses a partial final line; nothing to sign then.
        if encoder.insideLine { return }
        let bodyHash = scanner.bodyHash()
        let now = Sys.now()
        for k in keys {
            do {
                outgoing.signatures += try DKIMSigner.signature(header: scanner.header, bodyHash: bodyHash, key: k.key,
                                                                domain: k.domain, selector: k.selector, time: now)
            } catch {
                throw fail("ZUnable to sign for \(k.domain) with selector \(k.selector): \(error). (#4.3.0)\n")
            }
        }
    }

    /// The keys for the message's From: domain (empty: send unsigned). A
    /// key that should sign but cannot be read defers the message.
    private func signingKeys(_ header: [UInt8], _ dkim: RemoteSigning, _ domain: inout String) throws -> [DKIMSigningKey] {
        guard let d = DKIMSigner.fromDomain(header) else { return [] }
        domain = d
        do {
            return try dkim.store.signingKeys(for: d)
        } catch {
            throw fail("ZUnable to read the DKIM key of \(d): \(error). (#4.3.0)\n")
        }
    }
}
