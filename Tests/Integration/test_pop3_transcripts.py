"""POP3 golden transcripts: pop3-transcripts/NAME.in, fed to qmail-popup ->
checkpassword -> qmail-pop3d on a pipe over a Maildir holding two messages,
gives NAME.ref byte for byte (CRLF shown as LF, the greeting's timestamp as
TIME). A changed reply, a lost dot-stuffing or a reordered listing shows up
as a diff against the .ref file.

Run: SQ_BIN=$PWD/.build/release python3 -m pytest -q Tests/Integration/test_pop3_transcripts.py
"""
import pathlib
import re

import pytest

from test_pop3 import Env

TRANSCRIPTS = sorted((pathlib.Path(__file__).parent / "pop3-transcripts").glob("*.in"))


@pytest.fixture
def mailbox(tmp_path):
    e = Env(tmp_path)
    e.add(1)
    e.add(2, where="cur")
    yield e
    e.stop()


def normalised(out: bytes) -> str:
    text = out.decode("latin-1")
    text = re.sub(r"^\+OK <\d+\.\d+@", "+OK <TIME@", text)
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize("case", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_golden_transcripts(mailbox, case):
    r = mailbox.run_popup(case.read_bytes())
    assert normalised(r.stdout) == case.with_suffix(".ref").read_text()
