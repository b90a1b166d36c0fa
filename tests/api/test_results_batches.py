"""A job's results read across chunk and batch boundaries, on every backend (the
PostgreSQL path binds one array of ordinals a batch). Written in review."""

from __future__ import annotations

import pytest

from matchhub.jobs.repository import JobRepository
from tests.api.test_cases import STAFF, _job, _world
from tests.conftest import InProcessApi


def test_results_the_same_whatever_the_chunk_and_batch(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(api)
    with world.client("molsa") as client:
        client.headers.update(STAFF)
        _, whole = _job(world, client)
    assert len(whole) == 30
    monkeypatch.setattr("matchhub.jobs.repository.RESULT_CHUNK_ROWS", 4)
    monkeypatch.setattr(JobRepository.results, "__defaults__", (3,))
    with world.client("molsa") as client:
        client.headers.update(STAFF)
        _, cut = _job(world, client)
    assert cut == whole
