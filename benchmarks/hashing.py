"""Connector hashing rate: national IDs → wire tokens per second, on one core and on all cores.

    python benchmarks/hashing.py [--ids 2000000] [--processes N] [--key FILE] [--json FILE]

Measured on one core:

- ``hmac.new`` one-shot: the standard library's HMAC-SHA256 per ID, the baseline;
- ``hmac.digest``: the standard library's fastest one-shot HMAC (C, no HMAC object);
- ``Tokeniser.token`` / ``token_bytes``: matchhub's tokeniser (precomputed HMAC states);
- the same on IDs written in Arabic-Indic digits (normalised on the way);
- ``token_rows``: exactly what ``matchhub-connect`` runs per person once an extract is read
  (canonical ID from the accepted set, then the 32-byte token).

Then ``token_rows``-equivalent hashing in one worker process per core, each building its own
`Tokeniser` from the key *file* (tokens and keys refuse pickling, by design). The figures are
printed with the data size and the machine. The target is 600,000 IDs/s per core.
Never part of pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import random
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from matchhub.agency.connector.extract import Evaluation, token_rows
from matchhub.protocol.tokens import MatchingKey, Tokeniser, get_scheme
from matchhub.synth.population import IdPermutation

TARGET_PER_CORE = 600_000
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PREFIX = b"iq.ncn\x00"


def national_ids(start: int, count: int) -> list[str]:
    """`count` distinct valid 12-digit IDs, the same for the same `start`."""
    permutation = IdPermutation(random.Random(2025))  # noqa: S311 (benchmark data)
    placeholders = {str(d) * 12 for d in range(10)}
    ids = [f"{permutation(i):012d}" for i in range(start, start + count)]
    return [i for i in ids if i not in placeholders]


def best_of(repeats: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def single_core(key: MatchingKey, ids: list[str], repeats: int) -> dict[str, float]:
    secret = key.get_secret_value()
    tokeniser = Tokeniser(key, "iq.ncn")
    arabic = [i.translate(ARABIC) for i in ids]
    evaluation = Evaluation(Path("-"), "", get_scheme("iq.ncn"), True, ())
    evaluation.entries = dict.fromkeys(ids, 0)
    sha256 = hashlib.sha256
    cases: dict[str, Callable[[], object]] = {
        "stdlib hmac.new one-shot (baseline)": lambda: [
            hmac.new(secret, PREFIX + i.encode(), sha256).hexdigest() for i in ids
        ],
        "stdlib hmac.digest one-shot": lambda: [
            hmac.digest(secret, PREFIX + i.encode(), "sha256") for i in ids
        ],
        "Tokeniser.token (hex)": lambda: list(map(tokeniser.token, ids)),
        "Tokeniser.token_bytes": lambda: list(map(tokeniser.token_bytes, ids)),
        "Tokeniser.token_bytes, Arabic-Indic digits": lambda: list(
            map(tokeniser.token_bytes, arabic)
        ),
        "connector token_rows": lambda: list(token_rows(evaluation, tokeniser)),
    }
    return {name: len(ids) / best_of(repeats, run) for name, run in cases.items()}


# --- all cores: one process per core, each with its own Tokeniser from the key file ---------------

_worker_tokeniser: Tokeniser | None = None


def _start_worker(key_file: str) -> None:
    global _worker_tokeniser  # noqa: PLW0603 (one tokeniser per worker process)
    _worker_tokeniser = Tokeniser(MatchingKey.from_file(key_file), "iq.ncn")


def _work(task: tuple[int, int, int]) -> tuple[int, float, float]:
    """Hash IDs [start, start + count) `repeats` times; (IDs, best seconds, wall end time)."""
    start, count, repeats = task
    assert _worker_tokeniser is not None
    evaluation = Evaluation(Path("-"), "", get_scheme("iq.ncn"), True, ())
    evaluation.entries = dict.fromkeys(national_ids(start, count), 0)
    tokeniser = _worker_tokeniser
    seconds = best_of(repeats, lambda: list(token_rows(evaluation, tokeniser)))
    return len(evaluation.entries), seconds, time.time()


@dataclass(frozen=True)
class Parallel:
    processes: int
    ids: int
    ids_per_second: float
    per_process: list[float]


def all_cores(key_file: Path, per_process: int, processes: int, repeats: int) -> Parallel:
    tasks = [(n * per_process, per_process, repeats) for n in range(processes)]
    with multiprocessing.get_context("spawn").Pool(
        processes, initializer=_start_worker, initargs=(str(key_file),)
    ) as pool:
        results = pool.map(_work, tasks)
    total = sum(count for count, _, _ in results)
    slowest = max(seconds for _, seconds, _ in results)
    return Parallel(
        processes, total, total / slowest, [count / seconds for count, seconds, _ in results]
    )


# --- the machine ----------------------------------------------------------------------------------


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    memory = 0
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "openssl": ssl.OPENSSL_VERSION,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="IDs per measurement")
    parser.add_argument("--processes", type=int, default=0, help="default: every usable core")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--key", type=Path, help="a matching-key file (default: a throwaway key)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    info = machine()
    processes = args.processes or usable_cores()
    with tempfile.TemporaryDirectory() as folder:
        key_file = args.key or Path(folder) / "benchmark-key.json"
        if args.key is None:
            MatchingKey.generate("benchmark").to_file(key_file)
        key = MatchingKey.from_file(key_file)
        ids = national_ids(0, args.ids)
        print(
            f"machine: {info['cpu']}; {info['logical_cores']} logical cores "
            f"({info['usable_cores']} usable), {info['memory_gib']} GiB; "
            f"{info['implementation']} {info['python']}, {info['openssl']}"
        )
        print(f"data: {len(ids):,} distinct 12-digit IDs (iq.ncn), best of {args.repeats} runs\n")
        rates = single_core(key, ids, args.repeats)
        baseline = rates["stdlib hmac.new one-shot (baseline)"]
        width = max(map(len, rates))
        print("one core")
        for name, rate in rates.items():
            print(f"  {name:<{width}}  {rate:>12,.0f} IDs/s  ({rate / baseline:4.2f}x baseline)")
        parallel = all_cores(key_file, args.ids, processes, args.repeats)
    connector = rates["connector token_rows"]
    total = parallel.ids_per_second
    print(
        f"\nall cores: {parallel.processes} processes x {args.ids:,} IDs, each with its own "
        "Tokeniser from the key file"
    )
    print(
        f"  connector token_rows  {total:>12,.0f} IDs/s  "
        f"({total / parallel.processes:,.0f} per process)"
    )
    verdict = "met" if connector >= TARGET_PER_CORE else "NOT met"
    print(
        f"\ntarget >= {TARGET_PER_CORE:,} IDs/s per core: {verdict} ({connector:,.0f} on one core)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "machine": info,
            "ids": len(ids),
            "one_core": rates,
            "all_cores": asdict(parallel),
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
