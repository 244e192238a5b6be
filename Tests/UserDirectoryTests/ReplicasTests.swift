import XCTest
@testable import UserDirectory
import QmailCore

/// A directory answering from a table; `provider` is another one (or none).
final class TableDirectory: ReplicatedDirectory {
    var answers: [String: FileBackend.Recipient]
    var up = true
    var next: TableDirectory?
    var asked = 0
    let plainPasswordsEnabled = false

    init(_ answers: [String: FileBackend.Recipient], provider: TableDirectory? = nil) {
        self.answers = answers
        self.next = provider
    }

    func provider() throws -> (UserBackend & RecipientDirectory)? { next }

    func recipient(user: [UInt8], domain: [UInt8], aliases: Bool) -> FileBackend.Recipient {
        Replicas.confirm(read(user), self) { $0.recipient(user: user, domain: domain, aliases: aliases) }
    }

    func read(_ user: [UInt8]) -> FileBackend.Recipient {
        asked += 1
        if !up { return .temporary("down") }
        return answers[user.string] ?? .noSuchUser(ReplicasTests.dom)
    }

    func lookup(login: [UInt8]) -> LookupResult {
        RemoteDirectory.lookupResult(recipient(user: Array(login.split(separator: Ascii.at)[0]), domain: [], aliases: false))
    }
}

final class ReplicasTests: XCTestCase {
    static let dom = VDomain(name: Array("example.org".utf8), real: Array("example.org".utf8), dir: "/nonexistent",
                             uid: 1000, gid: 1000)

    func box(_ user: String, _ password: String) -> FileBackend.Recipient {
        let hash = try! PasswordHash.make(Array(password.utf8), scheme: .sha512)
        return .mailbox(Mailbox(login: Array("\(user)@example.org".utf8), uid: 1000, gid: 1000, home: "/h", maildir: "/h/Maildir",
                                shell: "/bin/false", passwordHash: hash), ReplicasTests.dom)
    }

    func testAReplicasNoIsTheProvidersToGive() {
        let provider = TableDirectory(["dave": box("dave", "pw")])
        let replica = TableDirectory([:], provider: provider)
        guard case .mailbox = replica.recipient(user: Array("dave".utf8), domain: [], aliases: true) else {
            return XCTFail("the provider's mailbox")
        }
        guard case .noSuchUser = replica.recipient(user: Array("nobody".utf8), domain: [], aliases: true) else {
            return XCTFail("unknown on both")
        }
        provider.up = false
        guard case .temporary(let why) = replica.recipient(user: Array("dave".utf8), domain: [], aliases: true) else {
            return XCTFail("provider down: temporary, never unknown")
        }
        XCTAssertTrue(why.contains("provider cannot confirm"), why)
    }

    func testAReplicasYesIsUsedAsItIs() {
        let provider = TableDirectory([:])
        let replica = TableDirectory(["alice": box("alice", "old")], provider: provider)
        provider.up = false
        guard case .mailbox = replica.recipient(user: Array("alice".utf8), domain: [], aliases: true) else {
            return XCTFail("the replica's mailbox")
        }
        XCTAssertEqual(provider.asked, 0)
    }

    func testWithoutAProviderTheAnswerIsFinal() {
        let only = TableDirectory([:])
        guard case .noSuchUser = only.recipient(user: Array("dave".utf8), domain: [], aliases: true) else {
            return XCTFail("one server's no is final")
        }
    }

    func testARefusedLoginIsCheckedWithTheProvider() {
        let provider = TableDirectory(["alice": box("alice", "new")])
        let replica = TableDirectory(["alice": box("alice", "old")], provider: provider)
        let login = Array("alice@example.org".utf8)
        func auth(_ pw: String) -> AuthResult {
            Authenticator.authenticate(replica, login: login, password: Array(pw.utf8), timestamp: [])
        }
        if case .ok = auth("old") {} else { XCTFail("the replica's yes") }
        if case .ok = auth("new") {} else { XCTFail("the provider's yes") }
        XCTAssertEqual(auth("wrong"), .mismatch)
        provider.up = false
        if case .temporary = auth("new") {} else { XCTFail("provider down: temporary, not a wrong password") }
    }
}
