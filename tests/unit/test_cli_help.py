"""The CLIs' help texts name only what exists: files of this repository and commands of the
CLI itself (a help text once named a deploy/nginx.conf and a `checkpoint` command that did not
exist)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from matchhub.agency.connector.cli import app as connect_app
from matchhub.agency.desk.cli import app as desk_app
from matchhub.cli.main import app as operator_app

ROOT = Path(__file__).parents[2]
FILE = re.compile(r"\b((?:deploy|docs|connectors|keys|openapi|scripts)/[\w.\-/]*\w)")
COMMAND = re.compile(r"`(matchhub(?:-connect|-desk)?)((?: [a-z][a-z-]*)+)")
APPS = {"matchhub": operator_app, "matchhub-connect": connect_app, "matchhub-desk": desk_app}


def _texts(command: Any) -> Iterator[str]:
    yield command.help or ""
    for parameter in command.params:
        yield getattr(parameter, "help", None) or ""
    for sub in getattr(command, "commands", {}).values():
        yield from _texts(sub)


def _file_exists(name: str) -> bool:
    """``connectors/KIND.toml``: a placeholder in capitals stands for any name."""
    return any(ROOT.glob(re.sub(r"[A-Z]{2,}", "*", name)))


def _exists(program: str, words: list[str]) -> bool:
    command: Any = typer.main.get_command(APPS[program])
    for word in words:
        commands = getattr(command, "commands", None)
        if commands is None:
            return True  # the rest are arguments
        if word not in commands:
            return False
        command = commands[word]
    return True


@pytest.mark.parametrize("program", sorted(APPS))
def test_help_texts_name_real_files_and_commands(program: str) -> None:
    texts = list(_texts(typer.main.get_command(APPS[program])))
    files = {m for text in texts for m in FILE.findall(text)}
    assert files  # the pattern finds what it is for
    assert [f for f in sorted(files) if not _file_exists(f)] == []
    named = {(p, words.split()[0]) for text in texts for p, words in COMMAND.findall(text)}
    assert [n for n in sorted(named) if not _exists(n[0], [n[1]])] == []
