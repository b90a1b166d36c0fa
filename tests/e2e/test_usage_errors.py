"""Usage errors at the real entry points (the console scripts, in subprocesses): no
arguments, an unknown command, a missing argument or option, an option without its value, a bad
value. Each is the usage of the command concerned, one ``Error:`` line and exit status 2; never a
traceback (connectors/README.md promises the 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(sys.executable).parent

CASES = [
    ("matchhub", [], "matchhub"),
    ("matchhub", ["nosuch"], "matchhub"),
    ("matchhub", ["agency"], "matchhub agency"),
    ("matchhub", ["--home", "x", "agency", "add"], "matchhub agency add"),
    ("matchhub", ["keys", "matching-key", "--out"], "matchhub keys matching-key"),
    ("matchhub", ["serve", "--port", "abc"], "matchhub serve"),
    ("matchhub-connect", [], "matchhub-connect"),
    ("matchhub-connect", ["nosuch"], "matchhub-connect"),
    ("matchhub-connect", ["push"], "matchhub-connect push"),
    ("matchhub-connect", ["push", "--definition"], "matchhub-connect push"),
    ("matchhub-connect", ["push", "--format", "nope"], "matchhub-connect push"),
    ("matchhub-desk", [], "matchhub-desk"),
    ("matchhub-desk", ["nosuch"], "matchhub-desk"),
    ("matchhub-desk", ["match", "--out", "x.csv", "--as", "ali"], "matchhub-desk match"),
    ("matchhub-desk", ["user", "add", "ali", "--role", "king"], "matchhub-desk user add"),
    ("matchhub-desk", ["serve", "--certificate"], "matchhub-desk serve"),
]


@pytest.mark.parametrize(
    ("script", "args", "usage_of"), CASES, ids=[f"{s} {' '.join(a)}" for s, a, _ in CASES]
)
def test_a_usage_error_is_the_usage_one_line_and_exit_2(
    tmp_path: Path, script: str, args: list[str], usage_of: str
) -> None:
    done = subprocess.run(
        [str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith(f"Usage: {usage_of} ")
    assert [line for line in lines if line.startswith("Error: ")] == [lines[-1]]
    assert len(lines) == 3  # the usage, where the help is, what is wrong
