"""The shape of the source tree that the design asks for and a reader can
rely on: library code returns values and never ends the process. Only a
program's main (main.swift, or its entry Sources/Programs/<program>.swift) exits (with the code its library entry point
returned), and the process facility, for a forked child that runs our code
and for a deadline alarm's handler."""
import re

from conftest import ROOT

SOURCE_DIRS = ("Sources", "checkpassword")

# The process facility: the only files besides mains that may end the process
# (MultiCall.swift: the dispatcher of the multi-call files ends it after a
# program's entry returns).
PROCESS_FACILITY = {
    "Sources/QmailCore/ChildProcess.swift",
    "Sources/QmailCore/ProcessExit.swift",
    "Sources/QmailCore/MultiCall.swift",
}
# A program's entry in a multi-call file is its main: Sources/Programs/<program>.swift.
PROGRAM_ENTRIES = "Sources/Programs/"

# A raw exit call: exit( / _exit( as a C function, or through Sys / Glibc.
EXIT_CALL = re.compile(r"(?<![\w.])_?exit\s*\(|\b(?:Sys|Glibc|Musl)\.(?:_?exit|exitFlushing)\s*\(")
# An enum case named exit (Handoff.exit) is a value, not a call.
EXIT_CASE = re.compile(r"\bcase\s+exit\s*\(")
NEVER = re.compile(r"->\s*Never\b")


def library_lines():
    """(path, line number, code without its // comment) of every Swift line
    outside mains and the process facility."""
    for d in SOURCE_DIRS:
        for path in sorted((ROOT / d).rglob("*.swift")):
            rel = path.relative_to(ROOT).as_posix()
            if path.name == "main.swift" or rel.startswith(PROGRAM_ENTRIES) or rel in PROCESS_FACILITY:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("//", 1)[0]
                yield rel, n, code


def test_library_code_never_exits():
    found = [f"{rel}:{n}: {code.strip()}" for rel, n, code in library_lines()
             if EXIT_CALL.search(code) and not EXIT_CASE.search(code)]
    assert found == [], "exit calls outside mains and the process facility:\n" + "\n".join(found)


def test_library_functions_return():
    found = [f"{rel}:{n}: {code.strip()}" for rel, n, code in library_lines() if NEVER.search(code)]
    assert found == [], "functions returning Never outside mains and the process facility:\n" + "\n".join(found)


def test_the_check_sees_what_it_looks_for():
    # The patterns match the forms the tree uses, and not the Handoff case.
    for call in ("_exit(1)", "exit(1)", "Sys.exit(code)", "Sys.exitFlushing(0)", "Glibc._exit(c)"):
        assert EXIT_CALL.search(call), call
    for other in ("Handoff.exit(0)", ".exit(QmailExit.permanent)", "Sys.exitOnAlarm(code: 1)", "atexit(f)"):
        assert not EXIT_CALL.search(other), other
    assert EXIT_CASE.search("    case exit(Int32)")
    assert (ROOT / "Sources" / "QmailCore" / "ProcessExit.swift").exists()


# Starting a process: posix_spawn, fork and clinux_spawn are called in one place only.
SPAWN_CALL = re.compile(r"(?<![\w.])(?:posix_spawnp?|fork|vfork|clinux_spawn)\s*\(")
SPAWN_FACILITY = {"Sources/QmailCore/ChildProcess.swift"}


def swift_lines(skip=frozenset()):
    for d in SOURCE_DIRS:
        for path in sorted((ROOT / d).rglob("*.swift")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in skip:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                yield rel, n, line.split("//", 1)[0]


def test_processes_start_only_in_the_process_facility():
    found = [f"{rel}:{n}: {code.strip()}" for rel, n, code in swift_lines(SPAWN_FACILITY)
             if SPAWN_CALL.search(code)]
    assert found == [], "process starts outside QmailCore/ChildProcess.swift:\n" + "\n".join(found)
    assert SPAWN_CALL.search("let pid = fork()") and SPAWN_CALL.search("posix_spawn(&pid, path")
    assert SPAWN_CALL.search("return clinux_spawn(&c)")
    assert not SPAWN_CALL.search("ChildProcess.forkRunning {") and not SPAWN_CALL.search("forkChild()")


# A top-level type declaration (not nested: no indentation).
TYPE_DECL = re.compile(r"^(?:(?:public|internal|fileprivate|private|package|final|indirect|@\w+(?:\([^)]*\))?)\s+)*"
                       r"(?:struct|enum|class|protocol|actor|typealias)\s+(\w+)")


def test_no_type_name_is_defined_in_two_modules():
    # One meaning per name: Channel, Base64, IPAddress and the like once had
    # several, in different modules.
    modules = {}
    for rel, _, code in swift_lines():
        m = TYPE_DECL.match(code)
        if m:
            modules.setdefault(m.group(1), set()).add(rel.split("/")[1])
    twice = {name: sorted(mods) for name, mods in modules.items() if len(mods) > 1}
    assert twice == {}, twice
    assert TYPE_DECL.match("public struct Foo {").group(1) == "Foo"
    assert TYPE_DECL.match("    enum Nested {") is None
