"""
A match job's results, turned back into the ministry's beneficiaries and households, locally.

The broker streams the flagged tokens with their flags (CSV: ``token,flag,source,as_of``, a
row per flag, a token's rows together, in roster order). The desk finds each token in the
roster's index (`RosterIndex.find`: the tokens it computed itself when it registered the
roster) and writes, in the match's folder:

``beneficiaries.csv``
    One row per flagged beneficiary: ``beneficiary_id, household_id, name, governorate`` (from
    the ministry's own extract), ``flags`` (codes), ``indication_ar``, ``indication_en`` (the
    catalogue's labels), ``sources`` (the asserting agency kinds) and ``as_of`` (the partners'
    snapshot dates), several values ``;``-separated in the same order.
``households.csv``
    One row per household with a flagged member: ``household_id, governorate,
    members_on_roster, members_flagged, flags, sources``.
``summary.json``
    Counts per flag, per source and per governorate, of beneficiaries and of households.
``rows.npy``
    Each listed beneficiary's row in the roster's index, in the list's order: where the desk
    finds the person (and their token) when a case is opened from the list.

Both CSV files are UTF-8 with a byte order mark, so that Excel shows Arabic as Arabic.
Nothing is sent to resolve; a token the index does not hold means the results belong to
another roster, and the resolution stops rather than drop people silently.
"""

from __future__ import annotations

import binascii
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matchhub.agency.desk.roster import RosterIndex

BOM = "\ufeff".encode()
BENEFICIARY_HEADER = (
    "beneficiary_id,household_id,name,governorate,flags,indication_ar,indication_en,sources,as_of"
)
HOUSEHOLD_HEADER = "household_id,governorate,members_on_roster,members_flagged,flags,sources"
RESULTS_HEADER = b"token,flag,source,as_of"


class ResolveError(Exception):
    """The results cannot be resolved against this roster's index; nothing was written."""


@dataclass(frozen=True)
class Source:
    flag: str
    source: str
    as_of: str


@dataclass
class Parsed:
    """The broker's results as columns: the tokens (32 bytes each, concatenated), for each a
    mask of the `sources` that flag it."""

    tokens: bytes
    masks: list[int]
    sources: list[Source]


def _lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for block in blocks:
        if not block:
            continue
        parts = (rest + block).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def parse_results(blocks: Iterable[bytes]) -> Parsed:
    """Parse the broker's CSV results (``Accept: text/csv``) as they stream in."""
    index: dict[bytes, int] = {}
    sources: list[Source] = []
    tokens: list[bytes] = []
    masks: list[int] = []
    lines = _lines(blocks)
    header = next(lines, b"").rstrip(b"\r")
    if header != RESULTS_HEADER:
        raise ResolveError("the broker's results are not in the expected CSV layout")
    last = b""
    mask = 0
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        token, rest = line[:64], line[65:]
        bit = index.get(rest)
        if bit is None:
            parts = rest.decode().split(",")
            if len(parts) != 3 or line[64:65] != b",":
                raise ResolveError("a line of the broker's results is malformed")
            bit = index[rest] = len(sources)
            sources.append(Source(*parts))
        if token != last:
            if last:
                tokens.append(last)
                masks.append(mask)
            last, mask = token, 0
        mask |= 1 << bit
    if last:
        tokens.append(last)
        masks.append(mask)
    try:
        joined = binascii.unhexlify(b"".join(tokens))
    except binascii.Error:
        raise ResolveError("a token in the broker's results is not hex") from None
    if len(joined) != 32 * len(tokens):
        raise ResolveError("a token in the broker's results has the wrong length")
    return Parsed(joined, masks, sources)


def _join(values: Iterable[str]) -> str:
    text = ";".join(values)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def resolve(
    parsed: Parsed,
    index: RosterIndex,
    labels: dict[str, dict[str, str]],
    folder: Path,
) -> dict[str, Any]:
    """Write the lists and the summary of `parsed` into `folder`; return the summary."""
    rows = index.find(parsed.tokens)
    missing = int((rows < 0).sum())
    if missing:
        raise ResolveError(
            f"{missing} flagged tokens are not on the roster this desk registered: the "
            "results belong to another roster version or matching key"
        )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    np.save(folder / "rows.npy", rows.astype(np.int64))
    distinct = sorted(set(parsed.masks))
    mask_id = {mask: i for i, mask in enumerate(distinct)}
    ids = np.fromiter((mask_id[m] for m in parsed.masks), dtype=np.int32, count=len(rows))
    sources = parsed.sources

    def members(mask: int) -> list[Source]:
        return [s for bit, s in enumerate(sources) if mask >> bit & 1]

    suffix = []
    for mask in distinct:
        chosen = members(mask)
        suffix.append(
            (
                ","
                + ",".join(
                    (
                        _join(s.flag for s in chosen),
                        _join(labels.get(s.flag, {}).get("ar", s.flag) for s in chosen),
                        _join(labels.get(s.flag, {}).get("en", s.flag) for s in chosen),
                        _join(s.source for s in chosen),
                        _join(s.as_of for s in chosen),
                    )
                )
                + "\n"
            ).encode()
        )
    with (folder / "beneficiaries.csv").open("wb", buffering=1 << 20) as out:
        out.write(BOM + BENEFICIARY_HEADER.encode() + b"\n")
        write = out.write
        for line, mask in zip(index.lines(rows), ids.tolist(), strict=True):
            write(line)
            write(suffix[mask])

    households = np.asarray(index.household[rows], dtype=np.int64)
    summary = _summary(
        parsed=parsed, index=index, rows=rows, ids=ids, distinct=distinct, households=households
    )
    _households(
        folder=folder,
        index=index,
        households=households,
        ids=ids,
        distinct=distinct,
        sources=sources,
    )
    (folder / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    return summary


def _households(
    *,
    folder: Path,
    index: RosterIndex,
    households: np.ndarray,
    ids: np.ndarray,
    distinct: list[int],
    sources: list[Source],
) -> None:
    unique, inverse, counts = np.unique(households, return_inverse=True, return_counts=True)
    union = [0] * len(unique)
    pairs = np.unique(inverse.astype(np.int64) * len(distinct) + ids)
    for pair in pairs.tolist():
        union[pair // len(distinct)] |= distinct[pair % len(distinct)]
    names = index.household_names()
    governorates = index.governorates
    with (folder / "households.csv").open("w", encoding="utf-8", newline="") as out:
        out.write("\ufeff" + HOUSEHOLD_HEADER + "\n")
        for position, household in enumerate(unique.tolist()):
            chosen = [s for bit, s in enumerate(sources) if union[position] >> bit & 1]
            out.write(
                ",".join(
                    (
                        _join([names[household]]),
                        _join([governorates[int(index.household_governorate[household])]]),
                        str(int(index.household_sizes[household])),
                        str(int(counts[position])),
                        _join(sorted({s.flag for s in chosen})),
                        _join(sorted({s.source for s in chosen})),
                    )
                )
                + "\n"
            )


def _summary(
    *,
    parsed: Parsed,
    index: RosterIndex,
    rows: np.ndarray,
    ids: np.ndarray,
    distinct: list[int],
    households: np.ndarray,
) -> dict[str, Any]:
    sources = parsed.sources
    per_mask = Counter(ids.tolist())
    flags = sorted({s.flag for s in sources})
    kinds = sorted({s.source for s in sources})

    def holds(mask: int, test: Any) -> bool:
        return any(test(s) for bit, s in enumerate(sources) if mask >> bit & 1)

    def count(test: Any) -> dict[str, int]:
        chosen = np.array([holds(m, test) for m in distinct], dtype=bool)
        if not len(ids):
            return {"beneficiaries": 0, "households": 0}
        selected = chosen[ids]
        return {
            "beneficiaries": int(sum(n for i, n in per_mask.items() if chosen[i])),
            "households": len(np.unique(households[selected])),
        }

    governorate = np.asarray(index.governorate[rows], dtype=np.int64)
    all_governorates = np.asarray(index.governorate, dtype=np.int64)
    kept = np.load(index.folder / "kept.npy")
    roster_by_gov = np.bincount(all_governorates[kept], minlength=len(index.governorates))
    flagged_by_gov = np.bincount(governorate, minlength=len(index.governorates))
    household_gov = index.household_governorate[np.unique(households)]
    households_by_gov = np.bincount(household_gov, minlength=len(index.governorates))
    return {
        "roster_size": index.size,
        "roster_households": int(index.meta["households"]),
        "flagged_beneficiaries": len(rows),
        "flagged_households": len(np.unique(households)),
        "per_flag": {code: count(lambda s, c=code: s.flag == c) for code in flags},
        "per_source": {kind: count(lambda s, k=kind: s.source == k) for kind in kinds},
        "per_governorate": sorted(
            (
                {
                    "name": name,
                    "roster": int(roster_by_gov[i]),
                    "beneficiaries": int(flagged_by_gov[i]),
                    "households": int(households_by_gov[i]),
                }
                for i, name in enumerate(index.governorates)
            ),
            key=lambda g: (-g["beneficiaries"], g["name"]),
        ),
        "sources": [{"flag": s.flag, "source": s.source, "as_of": s.as_of} for s in sources],
        # Why the counts per source add up to more than the flagged total: a beneficiary
        # flagged by two partners (or with two flags) counts once under each.
        "several_sources": _several(distinct, per_mask, sources, lambda s: s.source),
        "several_flags": _several(distinct, per_mask, sources, lambda s: s.flag),
    }


def _several(distinct: list[int], per_mask: Counter[int], sources: list[Source], key: Any) -> int:
    """Beneficiaries flagged under more than one source kind (or flag, by `key`)."""
    total = 0
    for i, mask in enumerate(distinct):
        if len({key(s) for bit, s in enumerate(sources) if mask >> bit & 1}) > 1:
            total += per_mask[i]
    return total
