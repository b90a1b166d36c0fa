"""
The roster, read once into an index the desk resolves results and lookups with.

The broker answers in tokens; the ministry needs its own beneficiaries back. So the desk reads
the ministry's extract once, when the roster is registered, computes every member's token
exactly as the connector does (TOKEN-SPEC.md: normalise, then HMAC under the matching key),
and keeps, in the roster's folder in its home (mode 0700):

``people.csv`` and ``offsets.npy``
    One line per accepted row, in extract order: the ministry's beneficiary ID, household ID,
    name and governorate, already CSV-quoted, and the byte offset of each line. A list row is
    this line plus the flags: no parsing, no quoting at resolution time.
``tokens.npy``
    The 32-byte token of each accepted row, in the same order (memory-mapped when used).
``sorted.npy``, ``prefix.npy``
    The rows of distinct people ordered by token, and the first 8 bytes of each token in that
    order as an unsigned integer: a binary search (`numpy.searchsorted`) over 7 million of
    them finds a million answers in a fraction of a second; the full 32 bytes are then compared.
``household.npy``, ``governorate.npy``, ``households.csv``, ``governorates.json``
    Each row's household and governorate as small integers, each household's ID, governorate
    and members on the roster.
``rejected.csv``, ``meta.json``
    Rejected rows (line and reason, never a cell: `matchhub.agency.connector.extract`), counts,
    the extract's SHA-256, the matching key's version and fingerprint.

Memory while reading: the tokens (32 bytes a row) and the household names, about 0.5 GB for 7
million rows; the rest streams to disk. Nothing of this folder is ever shown or sent: only the
tokens of distinct people go to the broker, as the roster upload.
"""

from __future__ import annotations

import binascii
import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from matchhub.agency.connector.definition import ROSTER_FIELDS, Definition, fold_text
from matchhub.agency.connector.extract import REJECTED_FILE, Reject
from matchhub.protocol.tokens import InvalidIdentifier, MatchingKey, Tokeniser, normalise

TOKEN = 32
PREFIX = 8
REJECTED_FLOOR = 10
_PROGRESS_EVERY = 16_384
_FIELD_LIMIT = 64 * 1024

ProgressCallback = Callable[[float], None]


class ExtractError(Exception):
    """The extract cannot be used as a roster; the message names the line or column, never a
    cell's content, and nothing has changed."""


@dataclass
class Built:
    """A roster index just built, not yet registered at the broker."""

    folder: Path
    rows: int
    people: int
    households: int
    rejected: dict[str, int] = field(default_factory=dict)

    def push_tokens(self) -> bytes:
        """The tokens of the distinct people, in extract order: the roster upload's rows."""
        tokens = np.load(self.folder / "tokens.npy", mmap_mode="r")
        kept = np.load(self.folder / "kept.npy")
        return bytes(np.ascontiguousarray(tokens[kept]).tobytes())


def _quote(cell: str) -> str:
    if any(c in cell for c in ',"\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _columns(header: list[str], definition: Definition, path: Path) -> tuple[int, list[int]]:
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(fold_text(name), index)
    wanted = [("id", definition.id_column)] + [
        (name, definition.roster_columns[name]) for name in ROSTER_FIELDS
    ]
    found: list[int] = []
    for role, column in wanted:
        index = positions.get(fold_text(column))
        if index is None:
            raise ExtractError(
                f"{path.name}: line 1: no column {column!r} (the {role.replace('_', ' ')} "
                "column the definition names); is this the roster extract?"
            )
        found.append(index)
    return found[0], found[1:]


def build(
    extract: Path,
    definition: Definition,
    key: MatchingKey,
    folder: Path,
    *,
    max_rejected: float = 0.05,
    progress: ProgressCallback | None = None,
) -> Built:
    """Read `extract` into a new index in `folder` (which must not exist). Raises
    `ExtractError`, leaving nothing behind, for a file that cannot be the roster."""
    missing = [name for name in ROSTER_FIELDS if name not in definition.roster_columns]
    if missing:
        raise ExtractError(
            f"{definition.path}: the [roster] table names no {', '.join(missing)} column: "
            "the desk needs them to turn results back into beneficiaries"
        )
    folder.mkdir(parents=True, mode=0o700)
    try:
        return _build(extract, definition, key, folder, max_rejected, progress)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _build(
    extract: Path,
    definition: Definition,
    key: MatchingKey,
    folder: Path,
    max_rejected: float,
    progress: ProgressCallback | None,
) -> Built:
    size = max(extract.stat().st_size, 1)
    tokeniser = Tokeniser(key, definition.scheme)
    scheme = definition.scheme
    digest = hashlib.sha256()
    tokens = bytearray()
    lines = array("q")
    offsets = array("q", [0])
    household_of = array("i")
    governorate_of = array("h")
    households: dict[str, int] = {}
    household_names: list[str] = []
    household_governorate = array("h")
    governorates: dict[str, int] = {}
    rejected: dict[str, int] = {}
    position = 0
    rows = 0
    csv.field_size_limit(_FIELD_LIMIT)
    with (
        extract.open("rb") as raw,
        (folder / "people.csv").open("wb", buffering=1 << 20) as people,
        _rejects(folder / REJECTED_FILE) as reject,
    ):
        text = io.TextIOWrapper(_Hashing(raw, digest), encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=definition.delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise ExtractError(f"{extract.name}: the file is empty: no header line")
            id_index, field_indexes = _columns(header, definition, extract)
            width = max(id_index, *field_indexes) + 1
            for row in reader:
                if not row:
                    continue
                rows += 1
                line = reader.line_num
                if progress is not None and not rows % _PROGRESS_EVERY:
                    progress(min(raw.tell() / size, 1.0))
                if len(row) < width:
                    reject.writerow((line, Reject.missing_field.value, "columns"))
                    rejected[Reject.missing_field.value] = rejected.get("missing_field", 0) + 1
                    continue
                try:
                    normalised = normalise(row[id_index], scheme)
                except InvalidIdentifier as exc:
                    reject.writerow((line, Reject.invalid_id.value, exc.reason.value))
                    rejected[Reject.invalid_id.value] = rejected.get("invalid_id", 0) + 1
                    continue
                tokens += tokeniser.token_bytes(normalised)
                lines.append(line)
                cells = [row[i].strip() for i in field_indexes]
                encoded = (",".join(map(_quote, cells)) + "\n").encode()
                people.write(encoded)
                position += len(encoded)
                offsets.append(position)
                household = households.get(cells[1])
                governorate = governorates.setdefault(cells[3], len(governorates))
                if household is None:
                    household = households[cells[1]] = len(household_names)
                    household_names.append(cells[1])
                    household_governorate.append(governorate)
                household_of.append(household)
                governorate_of.append(governorate)
        except UnicodeDecodeError:
            raise ExtractError(
                f"{extract.name}: line {reader.line_num + 1}: not UTF-8; save the extract as "
                "'CSV UTF-8'"
            ) from None
        except csv.Error as exc:
            raise ExtractError(
                f"{extract.name}: line {reader.line_num}: not valid CSV ({exc})"
            ) from None
    if not tokens:
        raise ExtractError(f"{extract.name}: no row with a valid national ID")
    token_array = np.frombuffer(tokens, dtype=np.uint8).reshape(-1, TOKEN)
    prefixes = _prefixes(token_array)
    order = np.argsort(prefixes, kind="stable")
    duplicate = _duplicates(token_array, prefixes, order)
    kept_rows = ~duplicate
    with (folder / REJECTED_FILE).open("a", newline="", encoding="utf-8") as again:
        writer = csv.writer(again, lineterminator="\n")
        for ordinal in np.flatnonzero(duplicate):
            writer.writerow((lines[int(ordinal)], Reject.duplicate.value, ""))
    if duplicate.any():
        rejected[Reject.duplicate.value] = int(duplicate.sum())
    rejected_total = sum(rejected.values())
    if rejected_total > REJECTED_FLOOR and rejected_total > max_rejected * rows:
        raise ExtractError(
            f"{extract.name}: {rejected_total / rows:.1%} of rows rejected (more than "
            f"{max_rejected:.0%}): is this the roster extract? Nothing was changed"
        )
    sorted_rows = order[kept_rows[order]]
    households_array = np.frombuffer(household_of, dtype=np.int32)
    sizes = np.bincount(households_array[kept_rows], minlength=len(household_names))
    np.save(folder / "tokens.npy", token_array)
    np.save(folder / "kept.npy", kept_rows)
    np.save(folder / "sorted.npy", sorted_rows.astype(np.int64))
    np.save(folder / "prefix.npy", prefixes[sorted_rows])
    np.save(folder / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
    np.save(folder / "household.npy", households_array)
    np.save(folder / "governorate.npy", np.frombuffer(governorate_of, dtype=np.int16))
    np.save(folder / "household_sizes.npy", sizes.astype(np.int32))
    np.save(folder / "household_governorate.npy", np.frombuffer(household_governorate, np.int16))
    with (folder / "households.csv").open("w", encoding="utf-8", newline="") as file:
        file.writelines(_quote(name) + "\n" for name in household_names)
    (folder / "governorates.json").write_text(
        json.dumps(list(governorates), ensure_ascii=False), encoding="utf-8"
    )
    people_count = int(kept_rows.sum())
    meta = {
        "format": "matchhub-desk-roster/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "extract_sha256": digest.hexdigest(),
        "definition_sha256": definition.sha256,
        "key_version": key.version,
        "key_fingerprint": key.fingerprint,
        "rows": rows,
        "people": people_count,
        "households": int((sizes > 0).sum()),
        "rejected": rejected,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    if progress is not None:
        progress(1.0)
    return Built(folder, rows, people_count, meta["households"], rejected)


class _Hashing(io.RawIOBase):
    """A file that hashes what is read from it: the extract's SHA-256 in the same pass."""

    def __init__(self, raw: Any, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count: int = self.raw.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        return count


@contextlib.contextmanager
def _rejects(path: Path) -> Iterator[Any]:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(("line", "reason", "detail"))
        yield writer


def _prefixes(tokens: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each token as a big-endian integer: the sort and search key."""
    return np.ascontiguousarray(tokens[:, :PREFIX]).view(">u8").ravel().astype(np.uint64)


def _duplicates(tokens: np.ndarray, prefixes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows whose token an earlier row already has (one row per person: the first stands).
    Equal tokens have equal prefixes, so only neighbours in prefix order are compared."""
    duplicate = np.zeros(len(prefixes), dtype=bool)
    ordered = prefixes[order]
    for start in np.flatnonzero(ordered[1:] == ordered[:-1]) + 1:
        row = int(order[start])
        back = start - 1
        while back >= 0 and ordered[back] == ordered[start]:
            earlier = int(order[back])
            if not duplicate[earlier] and np.array_equal(tokens[earlier], tokens[row]):
                duplicate[row] = True
                break
            back -= 1
    return duplicate


class RosterIndex:
    """A registered roster's index, opened read-only (the big arrays memory-mapped)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta: dict[str, Any] = json.loads((folder / "meta.json").read_text())
        self.tokens = np.load(folder / "tokens.npy", mmap_mode="r")
        self.sorted = np.load(folder / "sorted.npy")
        self.prefix = np.load(folder / "prefix.npy")
        self.offsets = np.load(folder / "offsets.npy")
        self.household = np.load(folder / "household.npy", mmap_mode="r")
        self.governorate = np.load(folder / "governorate.npy", mmap_mode="r")
        self.household_sizes = np.load(folder / "household_sizes.npy")
        self.household_governorate = np.load(folder / "household_governorate.npy")
        self.governorates: list[str] = json.loads((folder / "governorates.json").read_text())
        self._people = (folder / "people.csv").open("rb")
        self.people = np.memmap(self._people, dtype=np.uint8, mode="r") if self.size else None

    @property
    def size(self) -> int:
        """Distinct people on the roster."""
        return int(self.meta["people"])

    def close(self) -> None:
        self._people.close()

    def __enter__(self) -> RosterIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, tokens: bytes) -> np.ndarray:
        """The row of each 32-byte token of `tokens` (concatenated), or -1 if not on the
        roster."""
        queries = np.frombuffer(tokens, dtype=np.uint8).reshape(-1, TOKEN)
        if not len(queries):
            return np.zeros(0, dtype=np.int64)
        keys = _prefixes(queries)
        where = np.searchsorted(self.prefix, keys)
        where = np.minimum(where, len(self.prefix) - 1)
        rows = self.sorted[where]
        found = (self.prefix[where] == keys) & (self.tokens[rows] == queries).all(axis=1)
        rows = np.where(found, rows, -1)
        # Two tokens sharing their first 8 bytes (rare: about one pair in 7 million): look
        # along the run of equal prefixes.
        for i in np.flatnonzero(~found & (self.prefix[where] == keys)):
            j = int(where[i]) + 1
            while j < len(self.prefix) and self.prefix[j] == keys[i]:
                if np.array_equal(self.tokens[self.sorted[j]], queries[i]):
                    rows[i] = self.sorted[j]
                    break
                j += 1
        return rows

    def line(self, row: int) -> bytes:
        """The row's ``beneficiary_id,household_id,name,governorate``, CSV-quoted."""
        assert self.people is not None  # noqa: S101 (a roster has at least one person)
        start, end = int(self.offsets[row]), int(self.offsets[row + 1]) - 1
        return bytes(self.people[start:end])

    def person(self, row: int) -> dict[str, str]:
        cells = next(csv.reader([self.line(row).decode()]))
        return dict(zip(ROSTER_FIELDS, cells, strict=True))

    def lines(self, rows: Sequence[int] | np.ndarray) -> Iterator[bytes]:
        assert self.people is not None  # noqa: S101
        data, offsets = self.people, self.offsets
        for row in rows:
            yield bytes(data[offsets[row] : offsets[row + 1] - 1])

    def household_names(self) -> list[str]:
        return [
            next(csv.reader([name]))[0] if name.startswith('"') else name
            for name in (self.folder / "households.csv").read_text(encoding="utf-8").splitlines()
        ]


def hex_tokens(values: Sequence[bytes]) -> bytes:
    """Hex tokens (as the broker writes them) to their bytes, concatenated, in one call."""
    return binascii.unhexlify(b"".join(values))


def secure_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
