from __future__ import annotations

from pathlib import Path

from matchhub.web.openapi import render

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "openapi/openapi.json has drifted from the code: run `matchhub openapi` and commit it"
    )
