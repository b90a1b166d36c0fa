"""The benchmark runner starts and writes well-formed JSON on a tiny size, against the real
PostgreSQL. It never asserts a speed: benchmarks are not part of pass/fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import BACKENDS, PG_ADMIN_URL

REPO = Path(__file__).resolve().parents[2]
FIGURE_KEYS = {
    "name",
    "title",
    "skipped",
    "sizes",
    "series",
    "comparisons",
    "broker_peak_rss_mib",
    "notes",
    "extra",
    "seconds",
}
SERIES_KEYS = {"label", "unit", "higher_is_better", "n", "samples", "median", "min", "max"}


@pytest.mark.slow
@pytest.mark.skipif(
    "postgresql" not in BACKENDS, reason="MATCHHUB_TEST_BACKENDS leaves out PostgreSQL"
)
def test_quick_runner_on_postgresql_writes_well_formed_json(tmp_path: Path) -> None:
    out = tmp_path / "tiny.json"
    command = [sys.executable, "-m", "benchmarks", "--tiny", "--repeat", "1"]
    command += ["--only", "ingest", "--only", "lookups", "--only", "desk", "--json", str(out)]
    command += ["--postgres-url", PG_ADMIN_URL]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHHUB_")}
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads(out.read_text())

    assert document["schema"] == "matchhub-benchmarks/1"
    assert document["mode"] == "tiny"
    assert document["repeat"] == 1
    assert document["failed"] == []
    assert document["machine"]["usable_cores"] >= 1
    assert document["machine"]["memory_gib"] > 0
    assert document["machine"]["postgresql"]
    assert set(document["source"]) == set(document["source_at_end"]) == {"commit", "src_modified"}
    assert document["sizes"]["ingest_rows"] == 2_000
    assert list(document["figures"]) == ["ingest", "lookups", "desk_resolve"]
    for name, figure in document["figures"].items():
        assert set(figure) == FIGURE_KEYS, name
        assert figure["skipped"] is None, figure["skipped"]
        assert {"matchhub", "baseline"} <= set(figure["series"]), name
        for series in figure["series"].values():
            assert set(series) == SERIES_KEYS
            assert series["n"] == len(series["samples"]) == 1
            assert series["min"] <= series["median"] <= series["max"]
        for comparison in figure["comparisons"]:
            assert set(comparison) == {"text", "value", "target", "met"}
            assert comparison["value"] is not None
        if name != "desk_resolve":  # the desk's figure runs in this process, no broker
            assert figure["broker_peak_rss_mib"]["max"] > 0
    ingest = document["figures"]["ingest"]["series"]
    assert ingest["matchhub"]["unit"] == "rows/s"
    lookups = document["figures"]["lookups"]["series"]
    assert {"matchhub_p50", "matchhub_p99", "baseline_p50", "baseline_p99"} <= set(lookups)
    # The table went to stdout; the run's databases were dropped.
    assert "Against the targets" in run.stdout
    created = document["databases"]
    assert created
    assert all(name.startswith("matchhub_bench_") for name in created)
    assert not set(created) & _databases()


def _databases() -> set[str]:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()
