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

import contextlib
import csv
import hashlib
import io
import json
import mmap
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


def _columns(header: list[str], definition: Definition, name: str) -> tuple[int, list[int]]:
    positions: dict[str, int] = {}
    for position, cell in enumerate(header):
        positions.setdefault(fold_text(cell), position)
    wanted = [("id", definition.id_column)] + [
        (field, definition.roster_columns[field]) for field in ROSTER_FIELDS
    ]
    found: list[int] = []
    for role, column in wanted:
        index = positions.get(fold_text(column))
        if index is None:
            raise ExtractError(
                f"{name}: line 1: no column {column!r} (the {role.replace('_', ' ')} "
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
    label: str | None = None,
) -> Built:
    """Read `extract` into a new index in `folder` (which must not exist). Raises
    `ExtractError`, leaving nothing behind, for a file that cannot be the roster; its message
    names the file as `label` (default: the file's name)."""
    missing = [name for name in ROSTER_FIELDS if name not in definition.roster_columns]
    if missing:
        raise ExtractError(
            f"{definition.path}: the [roster] table names no {', '.join(missing)} column: "
            "the desk needs them to turn results back into beneficiaries"
        )
    folder.mkdir(parents=True, mode=0o700)
    try:
        reading = _Reading(extract, definition, key, folder, progress)
        reading.name = label or extract.name
        reading.read()
        return reading.finish(max_rejected)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


class _Reading:
    """One pass over the extract: each row rejected (line and reason) or accepted (its token,
    its people line, its household and governorate), the file hashed on the way."""

    def __init__(
        self,
        extract: Path,
        definition: Definition,
        key: MatchingKey,
        folder: Path,
        progress: ProgressCallback | None,
    ) -> None:
        self.extract, self.definition, self.key, self.folder = extract, definition, key, folder
        self.progress = progress
        self.tokeniser = Tokeniser(key, definition.scheme)
        self.digest = hashlib.sha256()
        self.tokens = bytearray()
        self.lines = array("q")
        self.offsets = array("q", [0])
        self.household_of = array("i")
        self.governorate_of = array("h")
        self.households: dict[str, int] = {}
        self.household_names: list[str] = []
        self.household_governorate = array("h")
        self.governorates: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.rows = 0
        self.name = extract.name

    def reject(self, writer: Any, line: int, reason: Reject, detail: str = "") -> None:
        writer.writerow((line, reason.value, detail))
        self.rejected[reason.value] = self.rejected.get(reason.value, 0) + 1

    def read(self) -> None:
        csv.field_size_limit(_FIELD_LIMIT)
        name = self.name
        size = max(self.extract.stat().st_size, 1)
        with (
            self.extract.open("rb") as raw,
            (self.folder / "people.csv").open("wb", buffering=1 << 20) as people,
            _rejects(self.folder / REJECTED_FILE) as rejects,
        ):
            hashing = io.BufferedReader(_Hashing(raw, self.digest))
            text = io.TextIOWrapper(hashing, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=self.definition.delimiter, strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    raise ExtractError(f"{name}: the file is empty: no header line")
                id_index, fields = _columns(header, self.definition, name)
                width = max(id_index, *fields) + 1
                for row in reader:
                    if not row:
                        continue
                    self.rows += 1
                    if self.progress is not None and not self.rows % _PROGRESS_EVERY:
                        self.progress(min(raw.tell() / size, 1.0))
                    if len(row) < width:
                        self.reject(rejects, reader.line_num, Reject.missing_field, "columns")
                        continue
                    try:
                        normalised = normalise(row[id_index], self.definition.scheme)
                    except InvalidIdentifier as exc:
                        self.reject(rejects, reader.line_num, Reject.invalid_id, exc.reason)
                        continue
                    self.accept(people, reader.line_num, normalised, [row[i] for i in fields])
            except UnicodeDecodeError:
                raise ExtractError(
                    f"{name}: line {reader.line_num + 1}: not UTF-8; save the extract as "
                    "'CSV UTF-8'"
                ) from None
            except csv.Error as exc:
                raise ExtractError(f"{name}: line {reader.line_num}: not CSV ({exc})") from None

    def accept(self, people: Any, line: int, normalised: str, row: list[str]) -> None:
        self.tokens += self.tokeniser.token_bytes(normalised)
        self.lines.append(line)
        cells = [cell.strip() for cell in row]
        encoded = (",".join(map(_quote, cells)) + "\n").encode()
        people.write(encoded)
        self.offsets.append(self.offsets[-1] + len(encoded))
        governorate = self.governorates.setdefault(cells[3], len(self.governorates))
        household = self.households.get(cells[1])
        if household is None:
            household = self.households[cells[1]] = len(self.household_names)
            self.household_names.append(cells[1])
            self.household_governorate.append(governorate)
        self.household_of.append(household)
        self.governorate_of.append(governorate)

    def finish(self, max_rejected: float) -> Built:
        """Find the repeated people, refuse a mostly rejected file, write the index."""
        if not self.tokens:
            raise ExtractError(f"{self.name}: no row with a valid national ID")
        folder = self.folder
        tokens = np.frombuffer(self.tokens, dtype=np.uint8).reshape(-1, TOKEN)
        prefixes = _prefixes(tokens)
        order = np.argsort(prefixes, kind="stable")
        duplicate = _duplicates(tokens, prefixes, order)
        with (folder / REJECTED_FILE).open("a", newline="", encoding="utf-8") as again:
            writer = csv.writer(again, lineterminator="\n")
            for row in np.flatnonzero(duplicate).tolist():
                self.reject(writer, self.lines[row], Reject.duplicate)
        rejected = sum(self.rejected.values())
        if rejected > REJECTED_FLOOR and rejected > max_rejected * self.rows:
            raise ExtractError(
                f"{self.name}: {rejected / self.rows:.1%} of rows rejected (more than "
                f"{max_rejected:.0%}): is this the roster extract? Nothing was changed"
            )
        kept = ~duplicate
        sorted_rows = order[kept[order]]
        household = np.frombuffer(self.household_of, dtype=np.int32)
        sizes = np.bincount(household[kept], minlength=len(self.household_names))
        arrays = {
            "tokens": tokens,
            "kept": kept,
            "sorted": sorted_rows.astype(np.int64),
            "prefix": prefixes[sorted_rows],
            "offsets": np.frombuffer(self.offsets, dtype=np.int64),
            "household": household,
            "governorate": np.frombuffer(self.governorate_of, dtype=np.int16),
            "household_sizes": sizes.astype(np.int32),
            "household_governorate": np.frombuffer(self.household_governorate, np.int16),
        }
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", values)
        with (folder / "households.csv").open("w", encoding="utf-8", newline="") as file:
            file.writelines(_quote(name) + "\n" for name in self.household_names)
        (folder / "governorates.json").write_text(
            json.dumps(list(self.governorates), ensure_ascii=False), encoding="utf-8"
        )
        people, households = int(kept.sum()), int((sizes > 0).sum())
        meta = {
            "format": "matchhub-desk-roster/1",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "extract_sha256": self.digest.hexdigest(),
            "definition_sha256": self.definition.sha256,
            "key_version": self.key.version,
            "key_fingerprint": self.key.fingerprint,
            "rows": self.rows,
            "people": people,
            "households": households,
            "rejected": self.rejected,
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if self.progress is not None:
            self.progress(1.0)
        return Built(folder, self.rows, people, households, dict(self.rejected))


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
        # A plain mmap: slicing it gives bytes at once (a numpy memmap's slice is an object).
        self.people = (
            mmap.mmap(self._people.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        )

    @property
    def size(self) -> int:
        """Distinct people on the roster."""
        return int(self.meta["people"])

    def close(self) -> None:
        if self.people is not None:
            self.people.close()
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
        return self.people[start:end]

    def person(self, row: int) -> dict[str, str]:
        cells = next(csv.reader([self.line(row).decode()]))
        return dict(zip(ROSTER_FIELDS, cells, strict=True))

    def lines(self, rows: Sequence[int] | np.ndarray) -> Iterator[bytes]:
        assert self.people is not None  # noqa: S101
        wanted = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[wanted].tolist()
        ends = (self.offsets[wanted + 1] - 1).tolist()
        data = self.people
        for start, end in zip(starts, ends, strict=True):
            yield data[start:end]

    def household_names(self) -> list[str]:
        return [
            next(csv.reader([name]))[0] if name.startswith('"') else name
            for name in (self.folder / "households.csv").read_text(encoding="utf-8").splitlines()
        ]
