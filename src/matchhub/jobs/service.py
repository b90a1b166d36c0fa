"""Match-job rules: submit, describe, run, results, retention. No HTTP, no commit."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from matchhub.catalogue import service as catalogue
from matchhub.identity.models import Agency
from matchhub.identity.repository import IdentityRepository
from matchhub.identity.schemas import Principal
from matchhub.jobs.models import MatchJob
from matchhub.jobs.repository import JobRepository
from matchhub.jobs.schemas import JobOut, JobSummary, OpenJob
from matchhub.keystore.rekey import Sealer
from matchhub.kit.errors import Conflict, Gone, NotFound, TooManyRequests
from matchhub.kit.models import utcnow
from matchhub.matching.engine import MatchOutcome
from matchhub.uploads.repository import SnapshotRepository

T = TypeVar("T")


def submit(
    session: Session, principal: Principal, request: OpenJob, *, max_queued: int
) -> MatchJob:
    granted = catalogue.granted_flags(session, principal, request.purpose, request.flags)
    repo = JobRepository(session)
    roster = SnapshotRepository(session).current_roster(principal.agency_id)
    if roster is None:
        raise Conflict("register a roster before running a match job", code="no_roster")
    IdentityRepository(session).hold(principal.agency_id)
    if repo.count_queued(principal.agency_id) >= max_queued:
        raise TooManyRequests(
            f"{max_queued} of this agency's match jobs are waiting to run already: wait for "
            "one to start before queuing another",
            code="too_many_queued_jobs",
            headers={"Retry-After": "30"},
        )
    job = MatchJob(
        id=secrets.token_hex(16),
        agency_id=principal.agency_id,
        purpose=request.purpose,
        flags=sorted(granted) if request.flags is not None else None,
        roster_snapshot_id=roster.id,
        end_user=principal.end_user,
        state="queued",
        progress=0.0,
        attempts=0,
        created_at=utcnow(),
    )
    repo.add(job)
    return job


def own_job(session: Session, principal: Principal, job_id: str) -> MatchJob:
    job = JobRepository(session).get(job_id)
    # Another agency's job is "not found": no hint that it exists.
    if job is None or job.agency_id != principal.agency_id:
        raise NotFound("no such match job", code="job_not_found")
    return job


def describe(job: MatchJob) -> JobOut:
    return JobOut(
        id=job.id,
        state=job.state,
        purpose=job.purpose,
        flags=job.flags,
        roster_version=job.roster_snapshot_id,
        progress=round(job.progress, 3),
        reason=job.reason,
        # Summaries written before sources lost their row counts are read through the same
        # schema, which drops them.
        summary=JobSummary.model_validate(job.summary) if job.summary else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        results_expire_at=job.expires_at,
        results_available=job.state == "succeeded" and job.results_purged_at is None,
    )


def results_ready(job: MatchJob) -> None:
    if job.state in ("queued", "running"):
        raise Conflict(
            f"the job is {job.state}; results come when it has succeeded", code="job_not_done"
        )
    if job.state == "failed":
        raise Conflict(f"the job failed: {job.reason}", code="job_failed")
    if job.results_purged_at is not None:
        raise Gone("the results have expired; the summary remains", code="results_expired")


def stream_results(
    session: Session,
    job: MatchJob,
    sealer: Sealer,
    render: Callable[[list[dict[str, str]]], T],
) -> Iterator[tuple[str, T]]:
    """(wire token hex, rendered flags) for each flagged roster member, in roster order. The
    sealed tokens are opened a batch at a time (keystore/rekey.py ``Sealer.unseal_many``), and
    each distinct set of sources is turned into its flags and rendered (``render``: the
    caller's wire form of them) once."""
    sources = job.sources or []
    rendered: dict[str, T] = {}
    for indexes, sealed in JobRepository(session).results(job):
        tokens = sealer.unseal_many(sealed).hex()
        for n, key in enumerate(indexes):
            flags = rendered.get(key)
            if flags is None:
                flags = rendered[key] = render(_flags(sources, key))
            yield tokens[64 * n : 64 * n + 64], flags


def _flags(sources: list[dict[str, Any]], indexes: str) -> list[dict[str, str]]:
    """The flags of a result's sources (indexes into the job's sources), each once."""
    flags: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for index in indexes.split(","):
        source = sources[int(index)]
        entry = (source["flag"], source["source"], source["as_of"])
        if entry not in seen:
            seen.add(entry)
            flags.append({"code": entry[0], "source": entry[1], "as_of": entry[2]})
    return flags


# --- the run, called by the runner with a claimed job ----------------------------------------


def plan(session: Session, job: MatchJob) -> list[dict[str, Any]]:
    """The provider snapshots this run reads: every current snapshot of the job's flags (the
    requested subset, or everything granted for the purpose now)."""
    agency = session.get(Agency, job.agency_id)
    if agency is None:  # pragma: no cover (a foreign key)
        raise NotFound("the job's agency is gone", code="agency_not_found")
    granted = catalogue.granted_codes(
        session, [f"kind:{agency.kind}", f"agency:{agency.code}"], job.purpose
    )
    flags = sorted(set(job.flags) & granted) if job.flags is not None else sorted(granted)
    return [
        {
            "snapshot_id": snapshot.id,
            "flag": snapshot.flag_code,
            "source": kind,
            "as_of": snapshot.as_of.isoformat(),
            "rows": snapshot.rows,
        }
        for snapshot, kind in SnapshotRepository(session).current_sources(flags)
    ]


def summarise(job: MatchJob, outcome: MatchOutcome, seconds: float) -> dict[str, Any]:
    return {
        "roster_version": job.roster_snapshot_id,
        "roster_size": outcome.roster_size,
        "flagged_beneficiaries": outcome.flagged,
        "per_flag": dict(sorted(outcome.per_flag.items())),
        "per_source": dict(sorted(outcome.per_source.items())),
        # What the plan read, without its row counts (a provider's whole snapshot size).
        "sources": [{k: s[k] for k in ("flag", "source", "as_of")} for s in job.sources or []],
        "seconds": round(seconds, 3),
    }


def expire_results(session: Session, now: datetime, limit: int) -> list[str]:
    """Delete one batch of results past their expiry; the ids of the jobs (which keep their
    summaries). The caller receipts them (cases/retention.py)."""
    repo = JobRepository(session)
    ids = repo.expired_results(now, limit)
    for job_id in ids:
        repo.delete_results(job_id)
    repo.mark_purged(ids, now)
    session.flush()
    return ids


def purge_results_on_rosters(session: Session, roster_ids: Sequence[int]) -> int:
    """Delete the results of every job that ran on one of these rosters (a retired key's);
    the jobs keep their summaries."""
    repo = JobRepository(session)
    jobs = repo.with_results_on_rosters(roster_ids)
    now = utcnow()
    for job in jobs:
        repo.delete_results(job.id)
        job.results_purged_at = now
    session.flush()
    return len(jobs)


def retention(days: float) -> timedelta:
    return timedelta(days=days)
