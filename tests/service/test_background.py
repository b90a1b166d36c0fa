"""The background work under faults (issue 13 item 7): a running job's heartbeat outlives
failed beats, and a commit's purge runs in the purger's thread, not in the request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from matchhub.jobs.runner import JobRunner
from matchhub.kit.db import make_engine, make_sessionmaker
from matchhub.matching.engine import MatchEngine
from matchhub.uploads.segments import SegmentStore
from tests.conftest import Hub


@pytest.mark.settings(job_lease_seconds=0.15)
def test_the_heartbeat_outlives_failed_beats(hub: Hub, tmp_path: Path) -> None:
    engine = make_engine(hub.settings.sqlalchemy_url)
    real = make_sessionmaker(engine)
    beats: list[str] = []

    def flaky() -> Session:
        """The pool exhausted twice (not a DBAPIError), then the database answers again."""
        beats.append("tried")
        if len(beats) <= 2:
            raise PoolTimeout("QueuePool limit reached")
        return real()

    segments = SegmentStore(tmp_path / "segments")
    runner = JobRunner(flaky, MatchEngine(), segments, hub.settings)  # type: ignore[arg-type]
    done = threading.Event()
    beat = threading.Thread(target=runner._heartbeat, args=("0" * 32, done, [0.5]), daemon=True)
    beat.start()
    deadline = time.monotonic() + 30
    try:
        while len(beats) < 5:  # two failures, then beats that reach the database
            assert beat.is_alive(), "the heartbeat died of a failed beat"
            assert time.monotonic() < deadline, beats
            time.sleep(0.02)
    finally:
        done.set()
        beat.join(timeout=10)
        engine.dispose()
    assert not beat.is_alive()
