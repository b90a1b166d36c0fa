"""The README's Layout section is the tree: every package and top-level folder it names exists,
and every one that exists is named. And the README names no file outside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _layout() -> list[tuple[int, str]]:
    """(indent, folder) of every folder the Layout block names."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    return [
        (len(m.group(1)), m.group(2))
        for m in re.finditer(r"^( *)([a-z_]+/)", block, flags=re.MULTILINE)
    ]


def _tracked_folders() -> set[str]:
    """Top-level folders of the files git tracks or would (not those it ignores: .venv, var)."""
    git = shutil.which("git")
    assert git is not None, "git is needed to tell the repository's folders from build output"
    files = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {f.split("/")[0] + "/" for f in files if "/" in f and not f.startswith(".")}


def test_the_layout_names_every_top_level_folder_and_no_other() -> None:
    named = {folder for indent, folder in _layout() if indent == 0}
    assert named == _tracked_folders()


def test_the_layout_names_every_package_of_the_broker_and_no_other() -> None:
    source = ROOT / "src" / "matchhub"
    packages = {p.name + "/" for p in source.iterdir() if (p / "__init__.py").exists()}
    named = {folder for indent, folder in _layout() if indent == 2}
    assert named == packages
    nested = {folder for indent, folder in _layout() if indent == 4}
    assert all((source / "agency" / folder).is_dir() for folder in nested)


def test_the_readme_names_no_file_outside_the_repository() -> None:
    assert "../" not in README
