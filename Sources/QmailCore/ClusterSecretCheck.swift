// Whether this host takes part in a cluster (issue 22) without
// control/clustersecret. Mail still routes without one, but its loop
// markers (X-Cluster-Delivered-To) are unsigned: any sender can write one
// and make a host hold a message as a loop. qmail-send says so in its log
// when it starts and when it rereads its controls; qmailctl doctor warns.
//
// A host is taken to be in a cluster when control/clusterhosts or
// control/clusterhost has a line, or a domain in users/vdomains names a
// home host (its sixth field). A site whose home hosts live only in LDAP
// or SQL, with no clusterhosts (DNS) and no clusterhost (control/me), is
// not seen; it still needs the secret.
public enum ClusterSecretCheck {
    /// What shows the host routes between cluster hosts; nil: nothing.
    public static func clusterSign(home: QmailHome, control: Control) -> String? {
        for name in ["clusterhosts", "clusterhost"] where !((try? control.list(name)) ?? []).isEmpty {
            return "control/\(name)"
        }
        let vdomains = home.path + "/users/vdomains"
        guard let data = (try? FileIO.read(vdomains)) ?? nil else { return nil }
        for line in Control.parseList(data) {
            let f = line.split(byte: Ascii.colon)
            if f.count == 6 && !f[5].isEmpty { return "users/vdomains (\(f[0].string))" }
        }
        return nil
    }

    /// The warning to give, or nil (a secret is set, or no cluster seen).
    public static func warning(home: QmailHome, control: Control) -> String? {
        if !((try? control.list("clustersecret")) ?? []).isEmpty { return nil }
        guard let sign = clusterSign(home: home, control: control) else { return nil }
        return "cluster routing is configured (\(sign)) but control/clustersecret is missing:"
            + " loop markers are unsigned, and anyone can forge one to hold a message"
    }
}
