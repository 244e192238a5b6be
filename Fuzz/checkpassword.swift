// modules: QmailCore UserDirectory Checkpassword
// Fuzz target: the checkpassword interface's fd 3 block
// ("user\0password\0timestamp\0", at most 512 bytes) as the checkpassword
// skeleton reads and splits it, and the login-name rules of the virtual
// user directory applied to the user field.
//
// Checked: reading fd 3 gives exactly the bytes written, or "too long" past
// 512; the split succeeds exactly when there are three NULs, gives fields
// without NUL that rebuild a prefix of the block; accepted user and domain
// names are canonical (checking them again changes nothing) and hold only
// the allowed characters.
#if canImport(Glibc)
import Glibc
#endif


@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpassword(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let fd3 = scratchHolding(bytes)
    do {
        let got = try Checkpassword.readInput(fd: fd3)
        check(bytes.count <= Checkpassword.inputLimit && got == bytes, "fd 3 read differs")
    } catch Checkpassword.InputError.tooLong {
        check(bytes.count > Checkpassword.inputLimit, "a short block called too long")
    } catch {
        check(false, "fd 3 unreadable: \(error)")
    }

    let nuls = bytes.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
    do {
        let r = try Checkpassword.parse(bytes)
        check(bytes.count <= Checkpassword.inputLimit && nuls >= 3, "parse accepted a bad block")
        for f in [r.user, r.password, r.timestamp] { check(!f.contains(0), "NUL inside a field") }
        let rebuilt = r.user + [0] + r.password + [0] + r.timestamp + [0]
        check(bytes.starts(with: rebuilt), "fields do not rebuild the block")
        if let u = try? Names.user(r.user) {
            check((try? Names.user(u)) == u, "user name not canonical")
            check(u.count <= Names.maxUser && u.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || [46, 95, 45, 43].contains($0) },
                  "user name with a forbidden byte")
            check(!u.starts(with: [46]) && !u.starts(with: [45]), "user name starts with '.' or '-'")
        }
        if let a = try? Names.address(r.user) {
            check((try? Names.domain(a.domain)) == a.domain, "domain not canonical")
            check(!a.domain.contains(47) && !a.user.contains(47), "'/' in a name")
        }
        if let p = try? Names.password(r.password) { check(!p.contains(10) && !p.contains(13), "newline in a password") }
    } catch Checkpassword.InputError.tooLong {
        check(bytes.count > Checkpassword.inputLimit, "a short block called too long")
    } catch {
        check(nuls < 3, "parse refused a good block")
    }
    return 0
}
