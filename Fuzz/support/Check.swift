// Compiled into every fuzz target (scripts/fuzz.sh): a broken invariant is
// a finding, reported as a crash with its reason.
func check(_ ok: Bool, _ what: String) {
    if !ok { fatalError("invariant broken: " + what) }
}
