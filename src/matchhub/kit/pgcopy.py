"""PostgreSQL's binary COPY format, written and read in one place.

Stored tokens go into PostgreSQL in bulk: an upload's rows are COPYed in. (They come out as
``string_agg`` values, uploads/repository.py ``SnapshotRows``: a COPY out is a message a row,
read one at a time.) The text formats would cost a parse per row; the binary one, for rows of
fixed-width fields that are never NULL, is a fixed-size record a row, which numpy builds and
reads without a Python loop:

    header   "PGCOPY\\n\\xff\\r\\n\\0", flags (int32, 0), header extension length (int32, 0)
    a row    field count (int16), then per field its length (int32) and its bytes
    trailer  -1 (int16)

All integers are big-endian (https://www.postgresql.org/docs/15/sql-copy.html, "Binary
Format"). :class:`Layout` describes one kind of row; :meth:`Layout.encode` and
:meth:`Layout.decode` are the only code that knows the framing.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)


class Layout:
    """Rows of fixed-width, non-NULL fields, named in order with a numpy type each
    (``">i4"`` for an int4, ``"V16"`` for a 16-byte bytea)."""

    def __init__(self, *fields: tuple[str, str]) -> None:
        self.names = tuple(name for name, _ in fields)
        self.widths = tuple(np.dtype(kind).itemsize for _, kind in fields)
        parts: list[tuple[str, str]] = [("count", ">i2")]
        for name, kind in fields:
            parts += [(f"{name}_length", ">i4"), (name, kind)]
        self.dtype = np.dtype(parts)

    def encode(self, columns: Mapping[str, npt.ArrayLike], rows: int) -> bytes:
        """COPY ... FROM STDIN (FORMAT BINARY) data for ``rows`` rows; each column is an array
        of ``rows`` values or one value for every row."""
        records = np.empty(rows, dtype=self.dtype)
        records["count"] = len(self.names)
        for name, width in zip(self.names, self.widths, strict=True):
            records[f"{name}_length"] = width
            records[name] = columns[name]
        return HEADER + records.tobytes() + TRAILER

    def decode(self, data: bytes) -> npt.NDArray[np.void]:
        """The rows of COPY ... TO STDOUT (FORMAT BINARY) output, as a structured array (its
        fields named as the layout's). Raises ``ValueError`` on anything but this layout."""
        body = memoryview(data)[len(HEADER) : len(data) - len(TRAILER)]
        if (
            data[: len(HEADER)] != HEADER
            or data[len(data) - len(TRAILER) :] != TRAILER
            or len(body) % self.dtype.itemsize
        ):
            raise ValueError("not binary COPY data of this layout")
        records = np.frombuffer(body, dtype=self.dtype)
        if len(records) and (
            np.any(records["count"] != len(self.names))
            or any(
                np.any(records[f"{name}_length"] != width)
                for name, width in zip(self.names, self.widths, strict=True)
            )
        ):
            raise ValueError("not binary COPY data of this layout")
        return records
