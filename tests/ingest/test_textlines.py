"""The careful line splitter: line ends at \\n only, editor line numbers, bad lines flagged,
the same answer whatever the block size."""

from __future__ import annotations

import pytest

from searchflow.events import MAX_LINE_BYTES
from searchflow.ingest import textlines

DATA = (
    b'{"a":1}\n'
    + b'{"a":\r1}\r\n'
    + b"\r\n"
    + b'{"c":3}\x00garbage\n'
    + b'{"d":"\xff\xfe"}\n'
    + b'{"e":"'
    + b"x" * (MAX_LINE_BYTES + 10)
    + b'"}\n'
    + b"\n"
    + b'{"last":1}'
)


def _rows(path, skip=0):
    return [
        (r["ln"], r["line"], (r["problem"] or "").split("\x1f")[-1])
        for table in textlines.read_lines(path, skip)
        for r in table.to_pylist()
    ]


@pytest.mark.parametrize("block", [4096, 1 << 20, textlines.BLOCK_BYTES])
def test_lines_whatever_the_block_size(tmp_path, monkeypatch, block):
    path = tmp_path / "t.jsonl"
    path.write_bytes(DATA)
    monkeypatch.setattr(textlines, "BLOCK_BYTES", block)
    rows = _rows(path)
    assert [r[0] for r in rows] == list(range(1, 9))
    assert rows[0][1] == '{"a":1}' and rows[1][1] == '{"a":\r1}' and rows[2][1] == ""
    assert rows[3][1] == '{"c":3}\x00garbage' and rows[3][2] == ""  # the parser judges it
    assert rows[4][1] == '{"d":"\ufffd\ufffd"}' and rows[4][2].startswith("not UTF-8: byte 0xff")
    assert rows[5][2].startswith(f"a line of {MAX_LINE_BYTES + 18:,} bytes")
    assert len(rows[5][1]) == textlines.KEPT_BYTES
    assert rows[7] == (8, '{"last":1}', "")
    assert [r[0] for r in _rows(path, skip=5)] == [6, 7, 8]
