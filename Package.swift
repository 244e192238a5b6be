// swift-tools-version:6.1
// swift-qmail: the qmail mail system in Swift.
//
// Every qmail program is its own executable target named exactly as qmail
// installs it; its main.swift is tiny and calls into a library module.
// Release builds link the Swift runtime statically (exec cost matters: qmail
// execs programs per message and per connection).
import PackageDescription

/// Release programs carry no symbol table (--strip-all): it is about 40% of
/// each file, the Swift runtime does not use it, and HOME/bin holds ~80 of
/// them. (Profile or debug with a debug build.)
let stripped = ["-Xlinker", "--strip-all"]
let staticStdlib: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib"] + stripped, .when(configuration: .release)),
]

/// Programs exec'd once per message (qmail-queue, qmail-inject, qmail-local
/// and the .qmail helpers; newaliases too), linked fully static in release builds: no dynamic loader,
/// no libstdc++ to map (fastforward's usage path: 0.97 ms per exec against
/// 1.6 ms with -static-stdlib alone; djb's C fastforward takes 0.78 ms).
/// They use no NSS (getpwnam), which is what a static glibc cannot do.
let fullyStatic: [LinkerSetting] = [
    .unsafeFlags(["-static-executable"] + stripped, .when(configuration: .release)),
]
let fullyStaticPrograms: Set<String> = ["fastforward", "dot-forward", "newaliases", "qmail-queue", "qmail-inject",
                                         "qmail-smtpd-auth", "qmail-srs", "srsreverse", "qmail-local", "vdelivermail",
                                         "qmail-vacation"]

/// program name -> library modules it links. Keep each list minimal: a
/// program links only what it needs (qmail-queue never links a backend).
let programs: [(name: String, deps: [String])] = [
    ("qmail-queue", ["QmailQueue"]),
    ("qmail-srs", ["QmailCore"]),
    ("qmail-filter", ["QmailFilter"]),
    ("qmail-quarantine", ["QmailFilter"]),
    ("qmail-start", ["QmailSend"]),
    ("qmail-send", ["QmailSend"]),
    ("qmail-lspawn", ["QmailSend"]),
    ("qmail-rspawn", ["QmailSend"]),
    ("qmail-clean", ["QmailSend"]),
    ("qmail-setup", ["QmailSetup"]),
    ("qmail-newmrh", ["QmailAdmin"]),
    ("qmail-showctl", ["QmailAdmin"]),
    ("qmail-qread", ["QmailAdmin"]),
    ("qmail-qstat", ["QmailAdmin"]),
    ("fastforward", ["QmailForward"]),
    ("newaliases", ["QmailForward"]),
    ("setforward", ["QmailForward"]),
    ("printforward", ["QmailForward"]),
    ("newinclude", ["QmailForward"]),
    ("setmaillist", ["QmailForward"]),
    ("printmaillist", ["QmailForward"]),
    ("dot-forward", ["QmailForward"]),
    ("srsreverse", ["QmailForward"]),
    ("qmail-inject", ["QmailInject"]),
    ("sendmail", ["QmailInject"]),
    ("predate", ["QmailInject"]),
    ("datemail", ["QmailInject"]),
    ("qmail-local", ["QmailLocal", "VDelivery"]),
    ("qmail-getpw", ["QmailLocal"]),
    ("qmail-newu", ["QmailLocal"]),
    ("qmail-pw2u", ["QmailLocal"]),
    ("preline", ["QmailLocal"]),
    ("condredirect", ["QmailLocal"]),
    ("bouncesaying", ["QmailLocal"]),
    ("except", ["QmailLocal"]),
    ("forward", ["QmailLocal"]),
    ("maildirmake", ["QmailLocal"]),
    ("maildir2mbox", ["QmailLocal"]),
    ("splogger", ["QmailLocal"]),
    ("tcpserver", ["QmailNet"]),
    ("tcprules", ["QmailNet"]),
    ("tcprulescheck", ["QmailNet"]),
    ("qmail-popup", ["QmailPOP3"]),
    ("qmail-pop3d", ["QmailPOP3"]),
    ("tlswrap", ["QmailTLS"]),
    ("checkpassword", ["Checkpassword", "UserDirectory", "QmailCore"]),
    ("checkpassword-file", ["Checkpassword", "UserDirectory", "QmailCore"]),
    ("vdelivermail", ["VDelivery", "QmailCore"]),
    ("qmail-vacation", ["VDelivery", "QmailCore"]),
    ("checkpassword-ldap", ["Checkpassword", "UserDirectoryLDAP", "QmailCore"]),
    ("checkpassword-mysql", ["Checkpassword", "UserDirectorySQL", "QmailCore"]),
    ("vdelivermail-ldap", ["VDelivery", "UserDirectoryLDAP", "QmailCore"]),
    ("vdelivermail-mysql", ["VDelivery", "UserDirectorySQL", "QmailCore"]),
    ("qmail-filter-ldap", ["QmailFilter", "UserDirectoryLDAP", "QmailCore"]),
    ("qmail-filter-mysql", ["QmailFilter", "UserDirectorySQL", "QmailCore"]),
    ("vfilterpolicy-ldap", ["VHosting", "UserDirectoryLDAP", "QmailCore"]),
    ("vfilterpolicy-mysql", ["VHosting", "UserDirectorySQL", "QmailCore"]),
    ("vexport", ["VHosting", "QmailCore"]),
    ("vadddomain", ["VHosting", "QmailCore"]),
    ("vdeldomain", ["VHosting", "QmailCore"]),
    ("vaddaliasdomain", ["VHosting", "QmailCore"]),
    ("vadduser", ["VHosting", "QmailCore"]),
    ("vdeluser", ["VHosting", "QmailCore"]),
    ("vpasswd", ["VHosting", "QmailCore"]),
    ("vsetuserquota", ["VHosting", "QmailCore"]),
    ("valias", ["VHosting", "QmailCore"]),
    ("vuserinfo", ["VHosting", "QmailCore"]),
    ("vdominfo", ["VHosting", "QmailCore"]),
    ("vconvert", ["VHosting", "QmailCore"]),
    ("vmoduser", ["VHosting", "QmailCore"]),
    ("vfilterpolicy", ["VHosting", "QmailCore"]),
    ("vmkpasswd", ["VHosting", "QmailCore"]),
    ("vdkim", ["VHosting", "QmailCore"]),
    ("vvacation", ["VHosting", "QmailCore"]),
    ("qmail-smtpd", ["QmailSMTP", "QmailNet"]),
    ("qmail-spfquery", ["QmailSPF"]),
    ("qmail-smtpd-auth", ["QmailCore"]),
    ("qmail-remote", ["QmailSMTP", "QmailNet"]),
    ("qmail-tcpto", ["QmailSMTP"]),
    ("qmail-tcpok", ["QmailSMTP"]),
    ("tcp-env", ["QmailNet"]),
    ("rblsmtpd", ["QmailNet"]),
    ("qmail-qmqpc", ["QmailSMTP"]),
    ("qmail-qmqpd", ["QmailSMTP"]),
    ("qmail-qmtpd", ["QmailSMTP"]),
    ("qmail-rcptcheck", ["QmailRcptCheck"]),
    ("qmailctl", ["QmailCtl", "QmailCore"]),
    ("qmail-report", ["QmailCtl", "QmailCore"]),
    ("maildirwatch", ["QmailSerial", "QmailCore"]),
    ("maildirsmtp", ["QmailSerial", "QmailCore"]),
    ("maildirserial", ["QmailSerial", "QmailCore"]),
    ("qmail-webadmin", ["QmailWeb"]),
]

let libraries: [Target] = [
    .target(name: "QmailCore", path: "Sources/QmailCore"),
    .target(name: "QmailQueue", dependencies: ["QmailCore"], path: "Sources/QmailQueue"),
    .target(name: "QmailSend", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailSend"),
    .target(name: "QmailAdmin", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailAdmin"),
    .target(name: "QmailForward", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailForward"),
    .target(name: "QmailLocal", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailLocal"),
    .target(name: "QmailSetup", dependencies: ["QmailCore", "QmailQueue", "QmailForward"], path: "Sources/QmailSetup"),
    .target(name: "QmailInject", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailInject"),
    .target(name: "QmailNet", dependencies: ["QmailCore"], path: "Sources/QmailNet"),
    .target(name: "QmailFilter", dependencies: ["QmailCore", "QmailQueue", "QmailNet", "UserDirectory"], path: "Sources/QmailFilter"),
    .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
    .target(name: "QmailTLS", dependencies: ["QmailCore", "COpenSSL"], path: "Sources/QmailTLS"),
    .target(name: "QmailPOP3", dependencies: ["QmailCore", "QmailTLS"], path: "Sources/QmailPOP3"),
    .systemLibrary(name: "CCrypt", path: "Sources/CCrypt", pkgConfig: "libxcrypt",
                   providers: [.apt(["libcrypt-dev"])]),
    .target(name: "UserDirectory", dependencies: ["QmailCore", "CCrypt"], path: "Sources/UserDirectory"),
    .systemLibrary(name: "CLDAP", path: "Sources/CLDAP", pkgConfig: "ldap", providers: [.apt(["libldap-dev"])]),
    .systemLibrary(name: "CMariaDB", path: "Sources/CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
    .target(name: "UserDirectoryLDAP", dependencies: ["QmailCore", "UserDirectory", "CLDAP"], path: "checkpassword/UserDirectoryLDAP"),
    .target(name: "UserDirectorySQL", dependencies: ["QmailCore", "UserDirectory", "CMariaDB"], path: "checkpassword/UserDirectorySQL"),
    .target(name: "Checkpassword", dependencies: ["QmailCore", "UserDirectory"], path: "checkpassword/Checkpassword"),
    .target(name: "QmailCtl", dependencies: ["QmailCore", "QmailQueue", "QmailAdmin", "QmailSetup", "QmailLocal", "UserDirectory"], path: "Sources/QmailCtl"),
    .target(name: "QmailSerial", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailSerial"),
    .target(name: "QmailDKIM", dependencies: ["QmailCore", "COpenSSL"], path: "Sources/QmailDKIM"),
    /// vdelivermail's delivery, linked into qmail-local too (no OpenSSL, no LDAP/MySQL client).
    .target(name: "VDelivery", dependencies: ["QmailCore", "QmailQueue", "QmailLocal", "QmailNet", "UserDirectory"], path: "Sources/VDelivery"),
    .target(name: "VHosting", dependencies: ["QmailCore", "UserDirectory", "QmailDKIM", "VDelivery", "QmailFilter"], path: "Sources/VHosting"),
    .target(name: "QmailRcptCheck", dependencies: ["QmailCore", "UserDirectory"], path: "Sources/QmailRcptCheck"),
    .target(name: "QmailSPF", dependencies: ["QmailCore", "QmailNet"], path: "Sources/QmailSPF"),
    .target(name: "QmailDMARC", dependencies: ["QmailCore", "QmailNet", "QmailDKIM"], path: "Sources/QmailDMARC"),
    /// The web administration (qmail-webadmin only): the one module that
    /// links Hummingbird, SwiftNIO and NIOSSL; no other program does.
    .target(name: "QmailWeb", dependencies: ["QmailCore", "UserDirectory", "QmailFilter", "VDelivery", "VHosting",
                                             .product(name: "Hummingbird", package: "hummingbird"),
                                             .product(name: "HummingbirdTLS", package: "hummingbird"),
                                             .product(name: "HTTPTypes", package: "swift-http-types"),
                                             .product(name: "NIOSSL", package: "swift-nio-ssl")],
            path: "Sources/QmailWeb"),
    .target(name: "QmailSMTP", dependencies: ["QmailCore", "QmailQueue", "QmailNet", "QmailTLS", "COpenSSL", "QmailDKIM", "QmailSPF", "QmailDMARC"], path: "Sources/QmailSMTP"),
]

/// The checkpassword programs live with their backends under checkpassword/
/// (checkpassword/README.md); every other program under Sources/.
let checkpasswordPrograms: Set<String> = ["checkpassword", "checkpassword-file", "checkpassword-ldap", "checkpassword-mysql"]

/// qmail-webadmin links FoundationEssentials (through SwiftNIO), whose
/// static archive needs its two helper archives named: -static-stdlib
/// alone leaves them out.
let staticFoundation: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-l_FoundationCShims"] + stripped,
                 .when(configuration: .release)),
]
let foundationPrograms: Set<String> = ["qmail-webadmin"]

let executables: [Target] = programs.map { p in
    .executableTarget(
        name: p.name,
        dependencies: p.deps.map { .target(name: $0) },
        path: checkpasswordPrograms.contains(p.name) ? "checkpassword/\(p.name)" : "Sources/\(p.name)",
        linkerSettings: fullyStaticPrograms.contains(p.name) ? fullyStatic
            : foundationPrograms.contains(p.name) ? staticFoundation : staticStdlib)
}

/// What the unit tests (and, but for its XCTest/ folder, the fuzz targets:
/// scripts/fuzz.sh) share: byte strings as text, an in-memory connection
/// and queue. Never linked into a program.
let testSupport: Target =
    .target(name: "TestSupport", dependencies: ["QmailCore", "QmailNet", "QmailQueue"], path: "Tests/TestSupport")

let tests: [Target] = [
    .testTarget(name: "QmailLocalTests", dependencies: ["QmailLocal", "QmailCore", "TestSupport"], path: "Tests/QmailLocalTests"),
    .testTarget(name: "QmailCoreTests", dependencies: ["QmailCore", "QmailQueue", "TestSupport"], path: "Tests/QmailCoreTests"),
    .testTarget(name: "QmailForwardTests", dependencies: ["QmailForward", "QmailCore", "TestSupport"], path: "Tests/QmailForwardTests"),
    .testTarget(name: "QmailSendTests", dependencies: ["QmailSend", "QmailCore", "TestSupport"], path: "Tests/QmailSendTests"),
    .testTarget(name: "QmailInjectTests", dependencies: ["QmailInject", "QmailCore", "TestSupport"], path: "Tests/QmailInjectTests"),
    .testTarget(name: "QmailNetTests", dependencies: ["QmailNet", "TestSupport"], path: "Tests/QmailNetTests"),
    .testTarget(name: "QmailPOP3Tests", dependencies: ["QmailPOP3", "TestSupport"], path: "Tests/QmailPOP3Tests"),
    .testTarget(name: "QmailCtlTests", dependencies: ["QmailCtl", "QmailSerial", "QmailCore", "TestSupport"], path: "Tests/QmailCtlTests"),
    .testTarget(name: "UserDirectoryBackendTests", dependencies: ["UserDirectory", "UserDirectoryLDAP", "UserDirectorySQL", "QmailCore", "TestSupport"], path: "Tests/UserDirectoryBackendTests"),
    .testTarget(name: "UserDirectoryTests", dependencies: ["UserDirectory", "Checkpassword", "QmailCore", "TestSupport"], path: "Tests/UserDirectoryTests"),
    .testTarget(name: "QmailDKIMTests", dependencies: ["QmailDKIM", "TestSupport"], path: "Tests/QmailDKIMTests"),
    .testTarget(name: "QmailSMTPTests", dependencies: ["QmailSMTP", "QmailNet", "QmailCore", "TestSupport"], path: "Tests/QmailSMTPTests"),
]

let package = Package(
    name: "swift-qmail",
    products: programs.map { .executable(name: $0.name, targets: [$0.name]) },
    // Hummingbird's default traits pull in swift-configuration and full
    // Foundation: qmail-webadmin needs neither (it parses its own forms).
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.0.0"),
    ],
    targets: libraries + executables + [testSupport] + tests,
    swiftLanguageModes: [.v5]
)
