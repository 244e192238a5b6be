"""scripts/fuzz.sh, the fuzzing part of the proof: it must report a crash
as a broken promise (exit 1) and count the inputs it ran. The real targets
run at the end of scripts/test.sh; here a planted target proves the
harness can fail."""
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]

BOOM = """// modules: QmailCore
// A target with a planted bug: it crashes on input that starts with "BOOM".
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBoom(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let b = Array(UnsafeBufferPointer(start: data, count: size))
    if b.starts(with: Array("BOOM".utf8)) { fatalError("planted crash") }
    _ = Control.parseList(b)
    return 0
}
"""

CALM = BOOM.replace('if b.starts(with: Array("BOOM".utf8)) { fatalError("planted crash") }', "")


def run_fuzz(tmp_path, name, source, seed):
    d = tmp_path / "Fuzz"
    (d / "corpus" / name).mkdir(parents=True)
    (d / f"{name}.swift").write_text(source)
    (d / "corpus" / name / "seed").write_bytes(seed)
    return subprocess.run([str(ROOT / "scripts/fuzz.sh"), "3", name], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, FUZZ_DIR=str(d), FUZZ_JOBS="1"),
                          timeout=900)


def test_planted_crash_breaks_the_promise(tmp_path):
    p = run_fuzz(tmp_path, "boom", BOOM, b"BOOM and more")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "PROMISE fuzz targets crash-free: BROKEN findings in boom" in p.stdout
    assert re.search(r"^FIGURE inputs fuzzed boom: \d+$", p.stdout, re.M)
    assert list((tmp_path / "Fuzz" / "artifacts").glob("boom-crash-*"))


def test_clean_target_keeps_the_promise(tmp_path):
    p = run_fuzz(tmp_path, "calm", CALM, b"a line\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PROMISE fuzz targets crash-free: ok" in p.stdout
    runs = int(re.search(r"^FIGURE inputs fuzzed calm: (\d+)$", p.stdout, re.M).group(1))
    assert runs > 100
    assert re.search(rf"^FIGURE inputs fuzzed total: {runs}$", p.stdout, re.M)
