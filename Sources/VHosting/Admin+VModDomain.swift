// vmoddomain: changes what vadddomain set for a whole hosted domain; for
// now its cluster home host (vadddomain -H), the one setting the web
// administration could change and the command line could not.
import QmailCore
import UserDirectory

extension Admin {
    func modifyDomain(_ args: [String]) throws -> [String] {
        let usage = "vmoddomain -H host domain"
        let o = try Options(args, flags: "", values: "H", usage: usage)
        guard o.operands.count == 1, let host = o.values["H"] else { throw AdminError.usage(usage) }
        try setDomainHomeHost(o.operands[0], host)
        return []
    }
}
