// qmail-users(5) lookups in users/cdb, the way qmail-lspawn makes them.
// qmail-newu writes the keys and values:
//   "!" local NUL  -> user NUL uid NUL gid NUL home NUL dash NUL ext   (=)
//   "!" loc        -> user NUL uid NUL gid NUL home NUL dash NUL pre   (+)
//   ""             -> the set of last characters of every + loc
// Here so that qmail-lspawn (QmailSend) and qmail-local's tools read it
// with the same code.

public enum UsersCdb {
    /// The entry for `local`: the exact key "!local\0" (lowercased) first,
    /// then ever shorter "!prefix" keys whose prefix is empty or ends in a
    /// wildcard character, the rest of `local` (as given) appended to the
    /// ext. Returned as qmail-getpw prints it, six NUL-terminated fields;
    /// nil when nothing matches.
    public static func lookup(_ cdb: CdbReader, local: [UInt8]) throws -> [UInt8]? {
        var key = [UInt8(ascii: "!")] + local.map(Ascii.lower)
        key.append(0)
        if let v = try cdb.find(key) { return v + [0] }
        key.removeLast()
        let wild = try cdb.find([]) ?? []
        var i = local.count
        while i >= 0 {
            if i == 0 || wild.contains(key[i]) {
                if let v = try cdb.find(Array(key[0...i])) { return v + local[i...] + [0] }
            }
            i -= 1
        }
        return nil
    }

    /// `lookup` in the users/cdb at `path`; nil also when there is no such file.
    public static func lookup(path: String, local: [UInt8]) throws -> [UInt8]? {
        guard let cdb = try CdbReader.open(path) else { return nil }
        return try lookup(cdb, local: local)
    }
}
