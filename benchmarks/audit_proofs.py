"""``python -m benchmarks.audit_proofs [--full]``: audit proofs at the broker on a large log.

A PostgreSQL database of its own (made and dropped here) is migrated and given a log of
``--entries`` entries (1M; 10M with ``--full``) as the broker stores it: each entry's leaf hash,
and (since migration 0014) the root of every perfect subtree above the leaves. Then, on that
log, through the broker's own service functions (what ``GET /v1/audit/proofs/...`` runs):

* inclusion and consistency proofs from the stored subtree roots (now), for random entries and
  sizes, beside the way they were made before: every leaf hash read and the tree rehashed;
* the append rate through ``append_many`` (batches of 64, as the audit writer commits them
  under load), with the subtree roots stored and without (today's and the previous code path),
  interleaved.

Prints the figures and the load average; docs/benchmarks.md keeps them.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from benchmarks.hub import DEFAULT_ADMIN_URL, libpq_url
from matchhub.audit import service as audit
from matchhub.audit.models import AuditEntry
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.migrate import upgrade
from matchhub.protocol import merkle
from matchhub.protocol.canonical import canonical


@contextmanager
def _database(admin_url: str) -> Iterator[str]:
    name = f"matchhub_bench_audit_{secrets.token_hex(3)}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _load_log(url: str, entries: int, say: Callable[[str], None]) -> None:
    """``entries`` entries as the broker stores them, COPYed in: bodies like a lookup's entry,
    leaf hashes, the subtree roots, the frontier in the state row."""
    frontier = merkle.CompactRange()
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        with conn.cursor() as cur:
            block = 200_000
            for start in range(0, entries, block):
                nodes: list[tuple[int, int, bytes]] = []
                with cur.copy(
                    "COPY audit_entries (seq, created_at, kind, route, body, leaf_hash) FROM STDIN"
                ) as copy:
                    for seq in range(start, min(start + block, entries)):
                        body = canonical(
                            {"seq": seq, "kind": "request", "route": "/v1/lookups", "status": 200}
                        )
                        leaf = merkle.leaf_hash(body)
                        frontier.append(leaf, nodes)
                        copy.write_row(
                            (
                                seq,
                                "2026-12-07T00:00:00Z",
                                "request",
                                "/v1/lookups",
                                body.decode(),
                                leaf,
                            )
                        )
                with cur.copy("COPY audit_nodes (level, idx, hash) FROM STDIN") as copy:
                    for node in nodes:
                        copy.write_row(node)
                say(f"  {min(start + block, entries):,} entries loaded")
            cur.execute(
                "UPDATE audit_state SET size = %s, frontier = %s, checkpoint_size = %s "
                "WHERE id = 1",
                (entries, Jsonb(frontier.to_dict()), entries),
            )
        conn.commit()
        conn.execute("ANALYZE audit_entries")
        conn.execute("ANALYZE audit_nodes")
        conn.commit()
    say(f"  log of {entries:,} entries loaded in {time.perf_counter() - started:.0f} s")


def _before_inclusion(session: Session, seq: int, size: int) -> list[bytes]:
    """How a proof was made before 0014: every leaf hash read, the tree rehashed."""
    stmt = select(AuditEntry.leaf_hash).where(AuditEntry.seq < size).order_by(AuditEntry.seq)
    hashes = [bytes(h) for h in session.scalars(stmt)]
    merkle.root(hashes)
    return merkle.inclusion_proof(seq, hashes)


def _before_consistency(session: Session, old: int, size: int) -> list[bytes]:
    stmt = select(AuditEntry.leaf_hash).where(AuditEntry.seq < size).order_by(AuditEntry.seq)
    hashes = [bytes(h) for h in session.scalars(stmt)]
    merkle.root(hashes[:old])
    merkle.root(hashes)
    return merkle.consistency_proof(old, hashes)


def _timed(call: Callable[[], Any], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(samples):.2f} ms, p99 {p99:.2f} ms (n={len(samples)})"


def _append_rate(factory: Any, keys: audit.AuditKeys, store_nodes: bool, seconds: float) -> float:
    """Entries a second through ``append_many``, 64 to a transaction; without the subtree
    roots when ``store_nodes`` is false (the code path before 0014)."""
    insert = audit._insert
    if not store_nodes:
        audit._insert = lambda s, rows, subjects, _nodes: insert(s, rows, subjects, [])  # type: ignore[assignment]
    try:
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            with session_scope(factory) as session:
                audit.append_many(
                    session,
                    keys,
                    [
                        audit.PendingEntry("request", {"route": "/v1/lookups", "status": 200})
                        for _ in range(64)
                    ],
                )
            done += 64
        return done / (time.perf_counter() - began)
    finally:
        audit._insert = insert  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_proofs")
    parser.add_argument("--full", action="store_true", help="10M entries (default 1M)")
    parser.add_argument("--entries", type=int, help="log size (overrides --full)")
    parser.add_argument("--proofs", type=int, default=200, help="proofs of each kind, now")
    parser.add_argument("--before", type=int, default=3, help="proofs of each kind, before")
    parser.add_argument("--append-seconds", type=float, default=10.0)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("MATCHHUB_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    )
    args = parser.parse_args(argv)
    entries = args.entries or (10_000_000 if args.full else 1_000_000)

    def say(line: str) -> None:
        print(line, flush=True)

    rng = random.Random(13)  # noqa: S311 (which entries to prove, not a secret)
    keys = audit.AuditKeys(
        origin="bench.matchhub/audit",
        signer=Ed25519PrivateKey.generate(),
        subject_key=b"\0" * 32,
        checkpoint_every=1000,
    )
    say(f"audit proofs at {entries:,} entries; load average {os.getloadavg()}")
    with _database(args.postgres_url) as url:
        engine = make_engine(url, pool_size=2)
        try:
            upgrade(engine)
            _load_log(url, entries, say)
            factory = make_sessionmaker(engine)
            sizes = [rng.randrange(entries // 2, entries + 1) for _ in range(args.proofs)]
            with factory() as session:
                inclusion = [rng.randrange(size) for size in sizes]
                olds = [rng.randrange(1, size) for size in sizes]
                calls = iter(range(args.proofs))
                now_inc = _timed(
                    lambda: audit.inclusion(session, inclusion[(i := next(calls))], sizes[i]),
                    args.proofs,
                )
                calls = iter(range(args.proofs))
                now_con = _timed(
                    lambda: audit.consistency(session, olds[(i := next(calls))], sizes[i]),
                    args.proofs,
                )
                size = entries
                before_inc = _timed(
                    lambda: _before_inclusion(session, rng.randrange(size), size), args.before
                )
                before_con = _timed(
                    lambda: _before_consistency(session, rng.randrange(1, size), size), args.before
                )
                check = audit.inclusion(session, 12345 % size, size)
                assert [bytes.fromhex(h) for h in check["proof"]] == _before_inclusion(
                    session, 12345 % size, size
                )
            say(f"inclusion proof, now:      {_ms(now_inc)}")
            say(f"inclusion proof, before:   {_ms(before_inc)}")
            say(f"consistency proof, now:    {_ms(now_con)}")
            say(f"consistency proof, before: {_ms(before_con)}")
            rates: dict[bool, list[float]] = {True: [], False: []}
            for store in (True, False, True, False):
                rates[store].append(_append_rate(factory, keys, store, args.append_seconds / 2))
            say(
                "append_many, 64 a transaction: "
                f"{statistics.median(rates[True]):,.0f} entries/s with the subtree roots, "
                f"{statistics.median(rates[False]):,.0f} without (before 0014)"
            )
            with engine.connect() as connection:
                nodes = connection.execute(text("SELECT pg_total_relation_size('audit_nodes')"))
                say(f"audit_nodes on disk: {nodes.scalar_one() / 2**20:,.0f} MiB")
        finally:
            engine.dispose()
    say(f"load average at the end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
