"""
Reading an agency's extract: CSV rows in, accepted people with the flags their rules imply out.

What stays and what leaves. The extract's cells (names, amounts, statuses, and the national ID
numbers themselves) are read here, in the agency's own process, and dropped once each row has
been folded into "this person: these flags". What leaves this module towards the broker is
`token_rows` (keyed-hash tokens and flag bits) and nothing else. The side file ``rejected.csv``
and every message hold line numbers, fixed reason codes and names from the definition (column
and field names), never a cell's content: an ID in a reject file is exactly the kind of leak
matchhub exists to prevent, and a reject file travels (it is mailed to whoever fixes the
extract).

Memory. Rows are read as a stream, line by line, and never all at once. What is kept is one
small entry per distinct person (the normalised ID and a bit mask, about 120 bytes): it is
needed anyway to refuse a repeated ID in a one-row-per-person extract, and to combine a person's
rows (e.g. sum their loans) when the definition says ``rows_per_person = "many"``. That bounds
memory by the number of distinct people, not by the size of the file: a roster of 4 million
people holds about 500 MB. Keeping the canonical ID string (rather than, say, an int) lets
`token_rows` hash at the tokeniser's full speed, with no per-row formatting.

Errors. A problem with one row (an invalid ID, a duplicate, an empty or unreadable field)
rejects that row, counted by reason with its line number in ``rejected.csv``. A problem with the
file as a whole (not UTF-8, not CSV, a column the definition needs is absent) raises
`ExtractError` naming the file, the line and the column, and nothing is sent.

Line numbers are those a text editor shows: the header is line 1, and a record whose quoted
cell spans several lines is numbered by its first line.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import compress
from pathlib import Path
from types import TracebackType
from typing import IO

from matchhub.agency.connector.definition import (
    MISSING_WORDS,
    Combine,
    CompiledFlag,
    Parse,
    Plan,
    Value,
    fold_text,
    parse_boolean,
    parse_number,
)
from matchhub.agency.connector.push import Chunk
from matchhub.protocol.tokens import InvalidIdentifier, Scheme, Tokeniser, looks_like_raw_identifier
from matchhub.protocol.tokens import normalise as normalise_id
from matchhub.protocol.wire import COMPACT, WIRE_TOKEN_BYTES, encode_compact

__all__ = [
    "REJECTED_FILE",
    "Evaluation",
    "ExtractError",
    "Reject",
    "evaluate",
    "token_rows",
    "wire_chunks",
]

REJECTED_FILE = "rejected.csv"
"""The side file of rejected rows: ``line,reason,detail``; never a cell's content."""

MAX_CHUNK_BYTES = 4 * 1024 * 1024
"""A chunk is cut early at this size whatever --chunk-rows says (the broker's limit is 8 MiB)."""

_PROGRESS_EVERY = 16_384
_BUFFER = 1 << 20


class ExtractError(Exception):
    """The extract cannot be read as its definition says. The message names the file, line and
    column; it never quotes a cell."""


class Reject(StrEnum):
    """Why a row was rejected. Stable: scripts read ``rejected.csv`` and the report."""

    invalid_id = "invalid_id"  # detail: the TOKEN-SPEC reason (wrong_length, bad_character, ...)
    duplicate = "duplicate"  # the ID was accepted on an earlier line (one row per person)
    missing_field = "missing_field"  # detail: the rule field whose cell is empty
    invalid_value = "invalid_value"  # detail: the rule field whose cell does not parse


ProgressCallback = Callable[[int, int], None]
"""Called now and then with (bytes read, rows read)."""


@dataclass
class Evaluation:
    """The outcome of reading one extract: who is flagged, and what was rejected and why."""

    path: Path
    sha256: str
    scheme: Scheme
    roster: bool
    flag_codes: tuple[str, ...]
    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_detail: Counter[str] = field(default_factory=Counter)
    entries: dict[str, int] = field(default_factory=dict)
    """Normalised ID → bit mask of flags, in the order people first appear."""

    @property
    def people(self) -> int:
        """Distinct people with at least one accepted row."""
        return len(self.entries)

    @property
    def flagged(self) -> dict[str, int]:
        """People per flag code."""
        counts = dict.fromkeys(self.flag_codes, 0)
        masks = Counter(self.entries.values())
        for bit, code in enumerate(self.flag_codes):
            counts[code] = sum(n for mask, n in masks.items() if mask >> bit & 1)
        return counts

    @property
    def to_send(self) -> int:
        """Rows the upload carries: every person of a roster, or each person with a flag."""
        if self.roster:
            return len(self.entries)
        return sum(1 for mask in self.entries.values() if mask)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def evaluate(
    path: str | Path,
    plan: Plan,
    *,
    rejected_path: Path,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """
    Read the extract at `path` with `plan` (a definition bound to its rules); write the rejected
    rows to `rejected_path`. Raises `ExtractError` for a problem with the file as a whole.
    """
    path = Path(path)
    definition = plan.definition
    try:
        handle = path.open("rb", buffering=_BUFFER)
    except OSError as exc:
        raise ExtractError(f"{path}: cannot read the extract: {exc.strerror}") from None
    with handle, _RejectLog(rejected_path) as rejects:
        lines = _Lines(path, handle)
        reader = csv.reader(lines, delimiter=definition.delimiter, strict=True)
        try:
            header = _header(reader, path)
            layout = _Layout(header, plan, path, lines.number)
            result = Evaluation(
                path, "", definition.scheme, definition.roster, definition.flag_codes
            )
            _Evaluator(layout, plan, result, rejects).run(reader, lines, progress)
        except csv.Error as exc:
            raise ExtractError(f"{path}: line {lines.number}: not valid CSV: {exc}") from None
        result.sha256 = lines.digest.hexdigest()
        if progress is not None:
            progress(lines.bytes, result.rows)
    return result


# --- the file: bytes → decoded lines with their numbers ----------------------------------------


class _Lines:
    """The extract as decoded lines, counting them and hashing the bytes on the way.

    Lines are decoded one at a time, so an encoding error names its exact line. The SHA-256 of
    the bytes identifies the extract for resuming an interrupted upload.
    """

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path, self.handle = path, handle
        self.digest = hashlib.sha256()
        self.number = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[str]:
        update = self.digest.update
        for raw in self.handle:
            self.number += 1
            self.bytes += len(raw)
            update(raw)
            if self.number == 1:
                yield self._first(raw)
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._not_utf8(raw, exc) from None

    def _first(self, raw: bytes) -> str:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise ExtractError(
                f"{self.path}: line 1: the file is UTF-16 (it starts with a UTF-16 byte order "
                "mark); save the extract as UTF-8 ('CSV UTF-8' in Excel)"
            )
        if b"\x00" in raw:
            raise ExtractError(
                f"{self.path}: line 1: the file holds NUL bytes, as UTF-16 or binary files do; "
                "save the extract as UTF-8 CSV"
            )
        try:
            return raw.decode("utf-8-sig")  # the BOM Excel writes is not part of the header
        except UnicodeDecodeError as exc:
            raise self._not_utf8(raw, exc) from None

    def _not_utf8(self, raw: bytes, exc: UnicodeDecodeError) -> ExtractError:
        return ExtractError(
            f"{self.path}: line {self.number}: not UTF-8 (byte 0x{raw[exc.start]:02X} at byte "
            f"{exc.start + 1} of the line); the extract must be UTF-8 — save it as 'CSV UTF-8', "
            "or convert it, e.g. `iconv -f CP1256 -t UTF-8`"
        )


def _header(reader: Iterator[list[str]], path: Path) -> list[str]:
    for row in reader:
        if any(cell.strip() for cell in row):
            return row
    raise ExtractError(f"{path}: the extract is empty: no header line")


@dataclass(frozen=True)
class _FlagReader:
    flag: CompiledFlag
    indices: tuple[int, ...]
    parse: Callable[[str], Value]
    number: bool


class _Layout:
    """Where the ID and each flag's columns are in this extract's header."""

    def __init__(self, header: list[str], plan: Plan, path: Path, line: int) -> None:
        definition = plan.definition
        self.path, self.header, self.line, self.definition = path, header, line, definition
        positions: dict[str, int] = {}
        ambiguous: set[str] = set()
        for index, name in enumerate(header):
            folded = fold_text(name)
            if folded in positions:
                ambiguous.add(folded)
            positions.setdefault(folded, index)
        self.positions, self.ambiguous = positions, ambiguous
        self.id = self._find(definition.id_column, "the ID column", "id.column")
        self.flags = tuple(
            _FlagReader(
                flag,
                tuple(
                    self._find(name, f"a column of flag {flag.source.code}", _key(flag))
                    for name in flag.source.columns
                ),
                _cell_parser(flag),
                flag.source.parse is Parse.number,
            )
            for flag in plan.flags
        )

    def _find(self, name: str, role: str, key: str) -> int:
        folded = fold_text(name)
        if folded in self.ambiguous:
            raise ExtractError(
                f"{self.path}: line {self.line}: column {name!r} ({role}, {key} in "
                f"{self.definition.path}) appears more than once in the header"
            )
        index = self.positions.get(folded)
        if index is None:
            raise ExtractError(
                f"{self.path}: line {self.line}: no column {name!r} ({role}, {key} in "
                f"{self.definition.path}); {self._describe_header()}"
            )
        return index

    def _describe_header(self) -> str:
        # If the file has no header, its first line is a data row: listing it would print a
        # national ID number (and a name) into a message that ends up in logs and e-mails.
        if any(looks_like_raw_identifier(cell) for cell in self.header):
            return (
                f"line {self.line} looks like data, not a header: the extract must start with "
                "a header line"
            )
        if any(len(cell) > 80 for cell in self.header):
            return f"line {self.line} does not look like a header line"
        return "the header has: " + ", ".join(repr(cell.strip()) for cell in self.header)


def _key(flag: CompiledFlag) -> str:
    which = "column" if len(flag.source.columns) == 1 else "columns"
    return f'flags."{flag.source.code}".{which}'


def _cell_parser(flag: CompiledFlag) -> Callable[[str], Value]:
    source = flag.source
    if source.parse is Parse.number:
        thousands, decimal = source.thousands, source.decimal
        return lambda cell: parse_number(cell, thousands, decimal)
    if source.parse is Parse.boolean:
        true, false = source.true_values, source.false_values
        return lambda cell: parse_boolean(cell, true, false)
    values = source.values

    def one_of(cell: str) -> bool:
        word = fold_text(cell)
        if word in MISSING_WORDS:
            raise ValueError("no value")
        return word in values

    return one_of


# --- rows → people ------------------------------------------------------------------------------

_FIRST: dict[Combine, Callable[[Value], Value]] = {
    Combine.sum: lambda v: v,
    Combine.max: lambda v: v,
    Combine.min: lambda v: v,
    Combine.any: lambda v: v,
    Combine.all: lambda v: v,
    Combine.count: lambda v: 1 if v is True else 0,
}
_STEP: dict[Combine, Callable[[Value, Value], Value]] = {
    Combine.sum: lambda a, v: a + v,
    Combine.max: max,
    Combine.min: min,
    Combine.any: lambda a, v: a is True or v is True,
    Combine.all: lambda a, v: a is True and v is True,
    Combine.count: lambda a, v: a + (1 if v is True else 0),
}


class _Problem(Exception):
    def __init__(self, reason: Reject, detail: str) -> None:
        self.reason, self.detail = reason, detail


def _read_value(reader: _FlagReader, row: list[str]) -> Value:
    """One flag's value from one row: its column, or its columns summed (numbers) or or-ed."""
    value: Value | None = None
    width = len(row)
    for index in reader.indices:
        cell = row[index] if index < width else ""
        if not cell or cell.isspace():
            raise _Problem(Reject.missing_field, reader.flag.source.field)
        try:
            parsed = reader.parse(cell)
        except ValueError:
            missing = len(cell) <= 8 and fold_text(cell) in MISSING_WORDS
            reason = Reject.missing_field if missing else Reject.invalid_value
            raise _Problem(reason, reader.flag.source.field) from None
        if value is None:
            value = parsed
        elif reader.number:
            value = value + parsed
        else:
            value = value is True or parsed is True
    assert value is not None  # noqa: S101 (a flag has at least one column)
    return value


class _Evaluator:
    """The row loop: each row becomes an accepted (ID, values) or a rejection."""

    def __init__(
        self, layout: _Layout, plan: Plan, result: Evaluation, rejects: _RejectLog
    ) -> None:
        self.layout, self.result, self.rejects = layout, result, rejects
        self.definition = plan.definition
        self.readers = layout.flags
        self.combines = [r.flag.source.combine for r in self.readers if r.flag.source.combine]
        self.combined: dict[str, list[Value]] = {}

    def reject(self, line: int, reason: Reject, detail: str = "") -> None:
        self.result.rejected[reason] += 1
        self.result.rejected_detail[f"{reason}:{detail}" if detail else reason] += 1
        self.rejects.write(line, reason, detail)

    def run(
        self, reader: Iterator[list[str]], lines: _Lines, progress: ProgressCallback | None
    ) -> None:
        scheme, prefixes = self.definition.scheme, self.definition.strip_prefixes
        id_index, readers = self.layout.id, self.readers
        accept = self.combine if self.definition.many_rows else self.once
        rows, end = 0, lines.number
        for row in reader:
            line, end = end + 1, lines.number
            if not row:
                continue  # a blank line
            rows += 1
            if progress is not None and not rows % _PROGRESS_EVERY:
                progress(lines.bytes, rows)
            raw = row[id_index] if id_index < len(row) else ""
            if prefixes:
                raw = _strip_prefix(raw, prefixes)
            try:
                key = normalise_id(raw, scheme)
            except InvalidIdentifier as exc:
                self.reject(line, Reject.invalid_id, exc.reason.value)
                continue
            try:
                values = [_read_value(r, row) for r in readers]
            except _Problem as problem:
                self.reject(line, problem.reason, problem.detail)
                continue
            accept(line, key, values)
        self.result.rows = rows
        entries = self.result.entries
        for key, state in self.combined.items():
            entries[key] = _mask(readers, state)
        self.combined.clear()

    def once(self, line: int, key: str, values: list[Value]) -> None:
        """One row per person: a repeated ID is rejected, the first row stands."""
        entries = self.result.entries
        if key in entries:
            self.reject(line, Reject.duplicate)
        else:
            entries[key] = _mask(self.readers, values)

    def combine(self, line: int, key: str, values: list[Value]) -> None:
        """Several rows per person: fold this row's values into the person's."""
        state = self.combined.get(key)
        if state is None:
            self.combined[key] = [
                _FIRST[how](v) for how, v in zip(self.combines, values, strict=True)
            ]
            return
        for i, how in enumerate(self.combines):
            state[i] = _STEP[how](state[i], values[i])


def _mask(readers: Sequence[_FlagReader], values: Sequence[Value]) -> int:
    mask = 0
    for reader, value in zip(readers, values, strict=True):
        if reader.flag.predicate(value):
            mask |= reader.flag.bit
    return mask


def _strip_prefix(raw: str, prefixes: Sequence[str]) -> str:
    stripped = raw.strip()
    for prefix in prefixes:
        if stripped.startswith(prefix):
            return stripped[len(prefix) :]
    return raw


class _RejectLog:
    """``rejected.csv``: line number, reason code, detail (a reason or a field name) — by
    construction never a cell's content, so the file can be shared with whoever fixes the
    extract."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _RejectLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self.path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(["line", "reason", "detail"])
        return self

    def write(self, line: int, reason: Reject, detail: str) -> None:
        self.writer.writerow([line, reason.value, detail])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.file.close()


# --- people → tokens → chunks -------------------------------------------------------------------


def token_rows(evaluation: Evaluation, tokeniser: Tokeniser) -> Iterator[tuple[bytes, int]]:
    """
    (32-byte wire token, flag mask) for each row of the upload, in a fixed order (the order
    people first appear in the extract), so that regenerating the rows after an interruption
    gives byte-identical chunks — the broker recognises them and resumes.

    This is the only place a raw identifier becomes something that leaves the connector, and
    it leaves only as an HMAC-SHA256 token under the matching key (TOKEN-SPEC.md).
    """
    if tokeniser.scheme != evaluation.scheme:
        raise ValueError("the tokeniser's scheme differs from the definition's")
    entries = evaluation.entries
    # Iterated in C (map, compress, filter, zip): the tokeniser is the only Python call per row.
    if evaluation.roster:
        return zip(map(tokeniser.token_bytes, entries), entries.values(), strict=True)
    masks = entries.values()
    flagged = compress(entries, masks)
    return zip(map(tokeniser.token_bytes, flagged), filter(None, masks), strict=True)


def wire_chunks(
    rows: Iterator[tuple[bytes, int]],
    *,
    flag_codes: Sequence[str],
    media_type: str,
    chunk_rows: int,
    roster: bool,
    max_bytes: int = MAX_CHUNK_BYTES,
) -> Iterator[Chunk]:
    """Rows as numbered chunk bodies in the compact or the NDJSON format (protocol/wire.py).
    A chunk closes at `chunk_rows` rows or `max_bytes` bytes, whichever comes first."""
    if media_type == COMPACT:
        yield from _compact_chunks(rows, len(flag_codes), chunk_rows, roster, max_bytes)
        return
    seq, size = 0, 0
    lines: list[bytes] = []
    for token, mask in rows:
        line = _ndjson_line(token, mask, flag_codes, roster)
        if lines and (len(lines) >= chunk_rows or size + len(line) > max_bytes):
            yield Chunk(seq, b"".join(lines), len(lines))
            seq, size, lines = seq + 1, 0, []
        lines.append(line)
        size += len(line)
    if lines:
        yield Chunk(seq, b"".join(lines), len(lines))


def _compact_chunks(
    rows: Iterator[tuple[bytes, int]],
    flag_count: int,
    chunk_rows: int,
    roster: bool,
    max_bytes: int,
) -> Iterator[Chunk]:
    width = WIRE_TOKEN_BYTES + (0 if roster else (flag_count + 7) // 8)
    per_chunk = max(1, min(chunk_rows, max_bytes // width))
    seq = 0
    batch: list[tuple[bytes, int]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == per_chunk:
            yield Chunk(seq, encode_compact(batch, flag_count, roster), len(batch))
            seq, batch = seq + 1, []
    if batch:
        yield Chunk(seq, encode_compact(batch, flag_count, roster), len(batch))


def _ndjson_line(token: bytes, mask: int, flag_codes: Sequence[str], roster: bool) -> bytes:
    if roster:
        return b'{"token":"%s"}\n' % token.hex().encode()
    codes = ",".join(f'"{code}"' for bit, code in enumerate(flag_codes) if mask >> bit & 1)
    return b'{"token":"%s","flags":[%s]}\n' % (token.hex().encode(), codes.encode())
