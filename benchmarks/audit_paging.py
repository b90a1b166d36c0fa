"""The auditors' paging of a long audit log: ``python -m benchmarks.audit_paging [--rows N]``.

Fills a scratch PostgreSQL database's ``audit_entries`` (the broker's own table and indexes,
from its metadata) with N synthetic entries in one ``INSERT ... SELECT generate_series`` (10
agencies, 2,000 staff pseudonyms, 8 routes, 1 % refused with one of 4 codes, one entry every
50 ms), then times the auditor's pages as the broker runs them (`matchhub.audit.service.entries`,
keyset by sequence number): the newest page, a page a million entries deep, each filter, a
period in the middle of the log, a deep page of a filtered view, a person's trail; and the
anomaly page's counts of an hour and of a day (`audit.service.activity`). Each query is the median
of five runs, warm. Not part of pass/fail; the figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from matchhub.audit import service
from matchhub.audit.models import AuditEntry, AuditState, audit_subjects
from matchhub.kit.models import Base

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP_MS = 50

FILL = text(
    """
    INSERT INTO audit_entries (seq, created_at, kind, agency, route, end_user, outcome, error,
                               body, leaf_hash)
    SELECT g, :start + (g * interval '50 milliseconds'), 'request',
           'agency-' || (g % 10), (ARRAY['/v1/lookups','/v1/whoami','/v1/flags',
           '/v1/match-jobs','/v1/match-jobs/{job_id}','/v1/uploads','/v1/audit/entries',
           '/v1/audit/checkpoint'])[1 + (g / 7) % 8],
           'du-' || lpad(((g * 7919) % 2000)::text, 26, 'a'),
           CASE WHEN g % 100 = 0 THEN 'refused' ELSE 'accepted' END,
           CASE WHEN g % 100 = 0 THEN (ARRAY['invalid_purpose','rate_limited','not_on_roster',
           'invalid_token'])[1 + (g / 100) % 4] END,
           '{}', decode(md5(g::text) || md5(g::text), 'hex')
    FROM generate_series(CAST(0 AS bigint), CAST(:rows AS bigint) - 1) AS g
    """
)
# One person per lookup entry, 500,000 people: each looked up a few times in 10M entries.
SUBJECTS = text(
    """
    INSERT INTO audit_subjects (digest, seq)
    SELECT left(md5((g % 500000)::text), 32), g
    FROM generate_series(CAST(0 AS bigint), CAST(:rows AS bigint) - 1) AS g
    WHERE (g / 7) % 8 = 0
    """
)


def _median(run: Callable[[], object], times: int = 5) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_paging")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--admin-url", default=ADMIN)
    args = parser.parse_args(argv)
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    try:
        tables = [AuditEntry.__table__, AuditState.__table__, audit_subjects]
        Base.metadata.create_all(engine, tables=tables)  # type: ignore[arg-type]
        indexes = [i for t in tables for i in t.indexes]  # type: ignore[attr-defined]
        started = time.perf_counter()
        with engine.begin() as connection:
            for index in indexes:  # built after the rows, as a restore would
                index.drop(connection)
            connection.execute(FILL, {"rows": args.rows, "start": START})
            connection.execute(SUBJECTS, {"rows": args.rows})
            for index in indexes:
                index.create(connection)
            connection.execute(
                text(
                    "INSERT INTO audit_state (id, size, frontier, checkpoint_size) "
                    "VALUES (1, :n, '{}', 0)"
                ),
                {"n": args.rows},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE audit_entries"))
        print(f"{args.rows:,} entries written and indexed in {time.perf_counter() - started:.0f} s")
        middle = START + timedelta(milliseconds=STEP_MS * args.rows // 2)
        deep = args.rows - 1_000_000
        cases: dict[str, tuple[service.EntryFilter, int, bool]] = {
            "newest page": (service.EntryFilter(), -1, True),
            "a page 1M entries deep (newest first)": (service.EntryFilter(), deep, True),
            "oldest page": (service.EntryFilter(), -1, False),
            "one agency, deep": (service.EntryFilter(agency="agency-3"), deep, True),
            "one staff member": (service.EntryFilter(end_user="du-" + "a" * 23 + "123"), -1, True),
            "refused": (service.EntryFilter(outcome="refused"), -1, True),
            "refused, one code, deep": (service.EntryFilter(error="rate_limited"), deep, True),
            "one person's trail": (
                service.EntryFilter(subject=hashlib.md5(b"112000").hexdigest()[:32]),  # noqa: S324
                -1,
                True,
            ),
            "one hour in the middle": (
                service.EntryFilter(since=middle, until=middle + timedelta(hours=1)),
                -1,
                True,
            ),
            "one day in the middle, one agency, refused": (
                service.EntryFilter(
                    since=middle,
                    until=middle + timedelta(days=1),
                    agency="agency-0",
                    outcome="refused",
                ),
                -1,
                True,
            ),
        }
        with Session(engine) as session:
            for label, (query, after, newest) in cases.items():

                def page(q: service.EntryFilter = query, a: int = after, n: bool = newest) -> int:
                    return len(service.entries(session, q, after=a, limit=50, newest_first=n))

                found = page()
                print(f"{label:45s} {found:3d} rows  {_median(page) * 1000:8.1f} ms")
            for hours in (1, 24):

                def counted(h: int = hours) -> int:
                    found = service.activity(
                        session,
                        middle,
                        middle + timedelta(hours=h),
                        offset_minutes=180,
                        many_staff=3,
                    )
                    return int(found["stop_seq"] - found["first_seq"])

                entries = counted()
                label = f"activity counted, {hours} h ({entries:,} entries)"
                print(f"{label:50s} {_median(counted, 3) * 1000:8.0f} ms")
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
