"""The binary COPY framing (kit/pgcopy.py): the bytes PostgreSQL's documentation specifies,
and a refusal of anything else. PostgreSQL itself reads and writes them in the upload and
match-job tests."""

from __future__ import annotations

import numpy as np
import pytest

from matchhub.kit.pgcopy import Layout

ROW = Layout(("snapshot_id", ">i4"), ("token", "V16"))


def test_one_row_is_framed_as_the_documentation_says() -> None:
    token = bytes(range(16))
    data = ROW.encode({"snapshot_id": 7, "token": np.frombuffer(token, "V16")}, 1)
    assert data == (
        b"PGCOPY\n\xff\r\n\x00"  # signature
        + b"\x00\x00\x00\x00"  # flags
        + b"\x00\x00\x00\x00"  # header extension length
        + b"\x00\x02"  # fields in the row
        + b"\x00\x00\x00\x04\x00\x00\x00\x07"  # int4 7
        + b"\x00\x00\x00\x10"  # 16 bytes follow
        + token
        + b"\xff\xff"  # trailer
    )


def test_what_is_written_reads_back() -> None:
    tokens = np.random.default_rng(5).bytes(16 * 1000)
    ids = np.arange(1000, dtype=np.int32)
    data = ROW.encode({"snapshot_id": ids, "token": np.frombuffer(tokens, "V16")}, 1000)
    rows = ROW.decode(data)
    assert rows["snapshot_id"].tolist() == ids.tolist()
    assert rows["token"].tobytes() == tokens
    assert len(ROW.decode(ROW.encode({"snapshot_id": 1, "token": b""}, 0))) == 0


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-2],  # no trailer
        lambda data: b"PGCOPX" + data[6:],  # not the signature
        lambda data: data[:-3] + data[-2:],  # a row cut short
        lambda data: data[:19] + b"\x00\x03" + data[21:],  # a row of three fields
        lambda data: data[:29] + b"\x00\x00\x00\x0f" + data[33:],  # a 15-byte token
    ],
)
def test_anything_else_is_refused(damage) -> None:  # type: ignore[no-untyped-def]
    data = ROW.encode({"snapshot_id": 1, "token": np.zeros(1, "V16")}, 1)
    with pytest.raises(ValueError, match="binary COPY"):
        ROW.decode(damage(data))
