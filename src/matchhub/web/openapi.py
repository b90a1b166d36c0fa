"""The committed OpenAPI document (``openapi/openapi.json``) and how it is made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matchhub.kit.settings import Settings
from matchhub.web.app import create_app


def document() -> dict[str, Any]:
    # Building the app reads no state; the home folder is never touched.
    return create_app(Settings(home=Path("/nonexistent"))).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_document(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
