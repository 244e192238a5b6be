// swift-tools-version:6.1
// swift-qmail: the qmail mail system in Swift.
//
// Every qmail program is named exactly as qmail installs it; its entry
// (a tiny main) calls into a library module. Programs share a few
// multi-call executables (Binary below). Release builds link the Swift
// runtime statically (exec cost matters: qmail execs programs per message
// and per connection).
import PackageDescription

/// Release programs carry no symbol table (--strip-all): it is about 40% of
/// each file and the Swift runtime does not use it. (Profile or debug with a
/// debug build.) Identical functions whose address no one takes are kept
/// once (--icf=safe: 1% of each file).
let stripped = ["-Xlinker", "--strip-all", "-Xlinker", "--icf=safe"]
/// The files linked with shared C libraries are position-independent, and
/// the loader relocates each pointer of the Swift runtime's metadata at
/// every exec: lld packs those relocations as DT_RELR (glibc 2.36 and
/// later), about 8 bytes per page instead of 24 per pointer, 0.4-0.5 MB
/// less in each such file.
let staticStdlib: [LinkerSetting] = [
    .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"] + stripped,
                 .when(configuration: .release)),
]

/// Fully static in release builds: no dynamic loader, no relocation of the
/// Swift runtime's metadata at each exec (an exec costs what /bin/true's
/// does: 0.55 ms against 1.65 ms with -static-stdlib alone, measured here).
/// Only for programs that use no NSS (getpwnam, getaddrinfo: a static glibc
/// cannot load the site's NSS modules) and no shared C library but libcrypt.
/// (Not OpenSSL: its static archive probes the CPU at every start, which
/// would cost each program of the file 0.03-0.04 ms an exec.)
let fullyStatic: [LinkerSetting] = [
    .unsafeFlags(["-static-executable"] + stripped, .when(configuration: .release)),
]

/// The files linked with shared C libraries take the C++ runtime that the
/// Swift runtime uses, and libgcc's unwinder, from their static archives:
/// loading libstdc++.so and libgcc_s.so cost each exec about 0.7 ms and 40
/// page faults (of qmail-smtpd's 3 ms and 500, measured here; none of the
/// shared libraries they load needs libstdc++). swiftc asks for -lstdc++
/// itself, before any flag given here, so link/static-cxx, searched first,
/// answers that name with a linker script pointing to libstdc++.a.
let staticCxx: [LinkerSetting] = [
    .unsafeFlags(["-L", Context.packageDirectory + "/link/static-cxx", "-Xclang-linker", "-static-libgcc"],
                 .when(configuration: .release)),
]

/// The files HOME/bin holds. Each Swift executable carries the Swift runtime
/// (about 6 MB even stripped), so programs share a few multi-call files
/// (QmailCore/MultiCall.swift), grouped by how they link and by privilege:
/// a program that runs as root shares a file only with root-run programs
/// that trusted parents start, and a setuid program has a file of its own
/// (argv[0], which picks the program, is its caller's to choose).
enum Binary: String, CaseIterable {
    /// Unprivileged, fully static: what runs per message (qmail-local,
    /// vdelivermail, qmail-inject, the .qmail helpers, qmail-send, ...).
    case main = "swift-qmail"
    /// Unprivileged, linking OpenSSL: qmail-smtpd, qmail-remote,
    /// qmail-popup (STLS), ... (qmail-pop3d, which qmail-popup's relay
    /// spares TLS, is in the fully static file: 0.55 ms an exec, not 2.9.)
    case tls = "swift-qmail-tls"
    /// Needing NSS (system accounts, host and service names) or the LDAP
    /// and MariaDB clients, whose loading costs about 2 ms an exec (kept out
    /// of the files of per-connection programs): the directory backends'
    /// programs, and what the administrator runs (qmailctl, qmail-setup,
    /// the v* commands and qmail-webadmin, whose network process gives up
    /// root before it reads from the network).
    case dyn = "swift-qmail-dyn"
    /// Run as root by a trusted parent (rc, a service's run script,
    /// qmail-lspawn, qmail-popup, tcpserver): qmail-start, qmail-lspawn,
    /// qmail-getpw, tcpserver, qmail-smtpd-auth, checkpassword and
    /// checkpassword-file. No OpenSSL, no LDAP or MariaDB client.
    /// Dynamic because checkpassword and qmail-getpw look up system
    /// accounts and tcpserver host and service names through NSS: a static
    /// glibc (2.36 here) has the files and dns sources built in, but loads
    /// any other source a site names in nsswitch.conf (sss, ldap, systemd,
    /// mdns) with dlopen, which works only with the very glibc it was built
    /// with; after an upgrade such a lookup may fail, and for qmail-getpw or
    /// checkpassword a failed lookup reads as "no such user": a bounce or a
    /// refused login instead of a retry. qmail-smtpd-auth and
    /// checkpassword-file need no NSS, and would exec in 0.55 ms instead of
    /// 1.8 in a fully static root-run file of their own, but that file
    /// would cost 7 MB of HOME/bin's 60.
    case root = "swift-qmail-root"
    /// The root-run checkpassword programs of the LDAP and SQL backends (kept
    /// apart so that the others do not load those clients at each login).
    case rootDB = "swift-qmail-root-db"

    var linkerSettings: [LinkerSetting] { self == .main ? fullyStatic : staticStdlib + staticCxx }
}

/// program name -> library modules it links, and the file that holds it
/// (nil: a file of its own, fully static). Keep each
/// list minimal: a program links only what it needs (qmail-queue never links
/// a backend or OpenSSL).
let programs: [(name: String, deps: [String], binary: Binary?)] = [
    ("qmail-queue", ["QmailQueue"], nil),
    ("qmail-srs", ["QmailCore"], nil),
    ("qmail-filter", ["QmailFilter"], .main),
    ("qmail-quarantine", ["QmailFilter"], .main),
    ("qmail-start", ["QmailSend"], .root),
    ("qmail-send", ["QmailSend"], .main),
    ("qmail-lspawn", ["QmailSend"], .root),
    ("qmail-rspawn", ["QmailSend"], .main),
    ("qmail-clean", ["QmailSend"], .main),
    ("qmail-setup", ["QmailSetup"], .dyn),
    ("qmail-newmrh", ["QmailAdmin"], .main),
    ("qmail-showctl", ["QmailAdmin"], .main),
    ("qmail-qread", ["QmailAdmin"], .main),
    ("qmail-qstat", ["QmailAdmin"], .main),
    ("fastforward", ["QmailForward"], .main),
    ("newaliases", ["QmailForward"], .main),
    ("setforward", ["QmailForward"], .main),
    ("printforward", ["QmailForward"], .main),
    ("newinclude", ["QmailForward"], .main),
    ("setmaillist", ["QmailForward"], .main),
    ("printmaillist", ["QmailForward"], .main),
    ("dot-forward", ["QmailForward"], .main),
    ("srsreverse", ["QmailForward"], .main),
    ("qmail-inject", ["QmailInject"], .main),
    ("sendmail", ["QmailInject"], .main),
    ("predate", ["QmailInject"], .main),
    ("datemail", ["QmailInject"], .main),
    ("qmail-local", ["QmailLocal", "VDelivery"], .main),
    ("qmail-getpw", ["QmailLocal"], .root),
    ("qmail-newu", ["QmailLocal"], .main),
    ("qmail-pw2u", ["QmailLocal"], .main),
    ("preline", ["QmailLocal"], .main),
    ("condredirect", ["QmailLocal"], .main),
    ("bouncesaying", ["QmailLocal"], .main),
    ("except", ["QmailLocal"], .main),
    ("forward", ["QmailLocal"], .main),
    ("maildirmake", ["QmailLocal"], .main),
    ("maildir2mbox", ["QmailLocal"], .main),
    ("splogger", ["QmailLocal"], .main),
    ("tcpserver", ["QmailNet"], .root),
    ("tcprules", ["QmailNet"], .main),
    ("tcprulescheck", ["QmailNet"], .main),
    ("qmail-popup", ["QmailPopup"], .tls),
    ("qmail-pop3d", ["QmailPOP3"], .main),
    ("qmail-pop3proxy", ["QmailPopup"], .tls),
    ("tlswrap", ["QmailTLS"], .tls),
    ("checkpassword", ["Checkpassword", "UserDirectory", "QmailCore"], .root),
    ("checkpassword-file", ["Checkpassword", "UserDirectory", "QmailCore"], .root),
    ("vdelivermail", ["VDelivery", "QmailCore"], .main),
    ("qmail-vacation", ["VDelivery", "QmailCore"], .main),
    ("checkpassword-ldap", ["Checkpassword", "UserDirectoryLDAP", "QmailCore"], .rootDB),
    ("checkpassword-mysql", ["Checkpassword", "UserDirectorySQL", "QmailCore"], .rootDB),
    ("vdelivermail-ldap", ["VDelivery", "UserDirectoryLDAP", "QmailCore"], .dyn),
    ("vdelivermail-mysql", ["VDelivery", "UserDirectorySQL", "QmailCore"], .dyn),
    ("qmail-rcptcheck-ldap", ["QmailRcptCheck", "UserDirectoryLDAP", "QmailCore"], .dyn),
    ("qmail-rcptcheck-mysql", ["QmailRcptCheck", "UserDirectorySQL", "QmailCore"], .dyn),
    ("qmail-filter-ldap", ["QmailFilter", "UserDirectoryLDAP", "QmailCore"], .dyn),
    ("qmail-filter-mysql", ["QmailFilter", "UserDirectorySQL", "QmailCore"], .dyn),
    ("vfilterpolicy-ldap", ["VHosting", "UserDirectoryLDAP", "QmailCore"], .dyn),
    ("vfilterpolicy-mysql", ["VHosting", "UserDirectorySQL", "QmailCore"], .dyn),
    ("vexport", ["VHosting", "QmailCore"], .dyn),
    ("vadddomain", ["VHosting", "QmailCore"], .dyn),
    ("vdeldomain", ["VHosting", "QmailCore"], .dyn),
    ("vaddaliasdomain", ["VHosting", "QmailCore"], .dyn),
    ("vadduser", ["VHosting", "QmailCore"], .dyn),
    ("vdeluser", ["VHosting", "QmailCore"], .dyn),
    ("vpasswd", ["VHosting", "QmailCore"], .dyn),
    ("vsetuserquota", ["VHosting", "QmailCore"], .dyn),
    ("valias", ["VHosting", "QmailCore"], .dyn),
    ("vuserinfo", ["VHosting", "QmailCore"], .dyn),
    ("vdominfo", ["VHosting", "QmailCore"], .dyn),
    ("vmoddomlimits", ["VHosting", "QmailCore"], .dyn),
    ("vmoddomain", ["VHosting", "QmailCore"], .dyn),
    ("vconvert", ["VHosting", "QmailCore"], .dyn),
    ("vmoduser", ["VHosting", "QmailCore"], .dyn),
    ("vmoveuser", ["VHosting", "QmailCore"], .dyn),
    ("vmoveuser-ldap", ["VHosting", "UserDirectoryLDAP", "QmailCore"], .dyn),
    ("vmoveuser-mysql", ["VHosting", "UserDirectorySQL", "QmailCore"], .dyn),
    ("vfilterpolicy", ["VHosting", "QmailCore"], .dyn),
    ("vmkpasswd", ["VHosting", "QmailCore"], .dyn),
    ("vdkim", ["VHosting", "QmailCore"], .dyn),
    ("vvacation", ["VHosting", "QmailCore"], .dyn),
    ("qmail-smtpd", ["QmailSMTP", "QmailNet"], .tls),
    ("qmail-spfquery", ["QmailSPF"], .main),
    ("qmail-smtpd-auth", ["QmailCore"], .root),
    ("qmail-remote", ["QmailSMTP", "QmailNet"], .tls),
    ("qmail-tcpto", ["QmailSMTP"], .tls),
    ("qmail-tcpok", ["QmailSMTP"], .tls),
    ("tcp-env", ["QmailNet"], .main),
    ("rblsmtpd", ["QmailNet"], .main),
    ("qmail-qmqpc", ["QmailSMTP"], .tls),
    ("qmail-qmqpd", ["QmailSMTP"], .tls),
    ("qmail-qmtpd", ["QmailSMTP"], .tls),
    ("qmail-rcptcheck", ["QmailRcptCheck"], .main),
    ("qmailctl", ["QmailCtl", "QmailCore"], .dyn),
    ("qmail-report", ["QmailCtl", "QmailCore"], .dyn),
    ("maildirwatch", ["QmailSerial", "QmailCore"], .main),
    ("maildirsmtp", ["QmailSerial", "QmailCore"], .dyn),
    ("maildirserial", ["QmailSerial", "QmailCore"], .main),
    ("qmail-webadmin", ["QmailWeb"], .dyn),
]

let libraries: [Target] = [
    /// Declarations of the Linux calls Swift's Glibc module leaves out.
    .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
    .target(name: "QmailCore", dependencies: ["CLinux"], path: "Sources/QmailCore"),
    .target(name: "QmailQueue", dependencies: ["QmailCore"], path: "Sources/QmailQueue"),
    .target(name: "QmailSend", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailSend"),
    .target(name: "QmailAdmin", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailAdmin"),
    .target(name: "QmailForward", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailForward"),
    .target(name: "QmailLocal", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailLocal"),
    .target(name: "QmailSetup", dependencies: ["QmailCore", "QmailQueue", "QmailForward"], path: "Sources/QmailSetup"),
    .target(name: "QmailInject", dependencies: ["QmailCore", "QmailQueue"], path: "Sources/QmailInject"),
    .target(name: "QmailNet", dependencies: ["QmailCore"], path: "Sources/QmailNet"),
    .target(name: "QmailFilter", dependencies: ["QmailCore", "QmailQueue", "QmailNet", "UserDirectory"], path: "Sources/QmailFilter"),
    .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", providers: [.apt(["libssl-dev"])]),
    .target(name: "QmailTLS", dependencies: ["QmailCore", "QmailNet", "COpenSSL"], path: "Sources/QmailTLS"),
    /// The POP3 sessions and qmail-pop3d's Maildir (no OpenSSL: qmail-pop3d
    /// is fully static); qmail-popup's I/O with its STLS relay, and the
    /// cluster's POP3 proxy (a TLS client), are QmailPopup.
    .target(name: "QmailPOP3", dependencies: ["QmailCore"], path: "Sources/QmailPOP3"),
    .target(name: "QmailPopup", dependencies: ["QmailCore", "QmailPOP3", "QmailTLS", "QmailNet"], path: "Sources/QmailPopup"),
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
    .target(name: "QmailSMTP", dependencies: ["QmailCore", "QmailQueue", "QmailNet", "QmailTLS", "COpenSSL", "QmailDKIM", "QmailSPF", "QmailDMARC"], path: "Sources/QmailSMTP"),
    /// The web administration (qmail-webadmin): its own HTTP/1.1 over
    /// QmailTLS (WebHTTP.swift says why).
    .target(name: "QmailWeb", dependencies: ["QmailCore", "QmailNet", "QmailTLS", "UserDirectory", "QmailFilter", "VDelivery", "VHosting"],
            path: "Sources/QmailWeb"),
]

/// A program alone in its file keeps Sources/<program>/main.swift; the
/// others are an entry function in Sources/Programs/<program>.swift, and
/// each multi-call file a table in Sources/Programs/<file>/main.swift.
/// The build makes no file per program: scripts/link-programs.sh names them
/// (symbolic links in .build/release) and qmail-setup installs each name as
/// a hard link to one copy of its file.
let executables: [Target] = programs.filter { $0.binary == nil }.map { p in
    .executableTarget(name: p.name, dependencies: p.deps.map { .target(name: $0) },
                      path: "Sources/\(p.name)",
                      linkerSettings: fullyStatic)
} + Binary.allCases.map { b in
    let held = programs.filter { $0.binary == b }
    let sources = [b.rawValue] + held.map { "\($0.name).swift" }
    let others = Binary.allCases.map(\.rawValue) + programs.filter { $0.binary != nil }.map { "\($0.name).swift" }
    var deps: [String] = ["QmailCore"]
    for p in held { for d in p.deps where !deps.contains(d) { deps.append(d) } }
    return .executableTarget(name: b.rawValue, dependencies: deps.map { .target(name: $0) },
                             path: "Sources/Programs", exclude: others.filter { !sources.contains($0) }, sources: sources,
                             linkerSettings: b.linkerSettings)
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

let products: [Product] = executables.map { Product.executable(name: $0.name, targets: [$0.name]) }

let package = Package(
    name: "swift-qmail",
    products: products,
    targets: libraries + executables + [testSupport] + tests,
    swiftLanguageModes: [.v5]
)
