"""The folder tree is the import graph: each package imports only those below it.

Read from the source (AST), not by importing, so a violation is found even in a module no test
imports. Function-level imports are allowed in the broker (the CLI imports the server only when
it serves), never on the agency side: what runs at an agency imports nothing of the broker,
however late.
"""

from __future__ import annotations

import ast
from pathlib import Path

import matchhub

ROOT = Path(matchhub.__file__).parent

# Lowest first. A package may import its own modules and those of packages ranked below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("protocol",),  # shared bit for bit with the agencies
    ("kit",),  # database, errors, settings, logs, the request port
    ("fleet",),  # the broker's own processes and their heartbeats
    ("matching",),  # the pure match engine
    ("keystore",),
    ("identity",),
    ("catalogue",),
    ("audit",),
    ("uploads",),
    ("jobs",),
    ("lookups",),
    ("cases",),  # due process: cases, feedback, retention with receipts
    ("migrations",),  # the models of every domain, for Alembic
    ("web",),  # the app, the server, the unit of work
    ("cli",),  # the operator's commands, the demo
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
# The agency side: what a connector or a desk installs. It may import the protocol only.
AGENCY_SIDE = frozenset({"protocol", "agency", "synth"})
# The broker's CLI plays every party in the demo, so it may drive the agency side too.
MAY_IMPORT_AGENCY_SIDE = frozenset({"cli"})


def _package(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return "__init__" if name.startswith("__") else name


def _with_if_bodies(node: ast.stmt) -> list[ast.stmt]:
    return [node, *node.body] if isinstance(node, ast.If) else [node]


def _imports(path: Path, *, module_level: bool) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level else list(ast.walk(tree))
    if module_level:  # `if TYPE_CHECKING:` blocks are module level too
        nodes = [n for node in nodes for n in _with_if_bodies(node)]
    found: list[tuple[int, str]] = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.startswith("matchhub.")][:1]
            if node.module == "matchhub":
                found += [(node.lineno, f"matchhub.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("matchhub.")]
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(("matchhub", *p.relative_to(ROOT).with_suffix("").parts)), p)
        for p in sorted(ROOT.rglob("*.py"))
    ]


def _violations() -> list[str]:
    problems: list[str] = []
    for module, path in _modules():
        own = _package(module)
        if own in ("__init__", "__main__", ""):
            continue
        agency = own in AGENCY_SIDE
        for line, target in _imports(path, module_level=not agency):
            other = _package(target)
            if other in (own, "__init__"):
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if agency:
                if other != "protocol":
                    problems.append(f"{where}: the agency side imports only the protocol")
            elif other in AGENCY_SIDE - {"protocol"}:
                if own not in MAY_IMPORT_AGENCY_SIDE:
                    problems.append(f"{where}: only the CLI drives the agency side")
            elif other not in RANK or own not in RANK:
                problems.append(f"{where}: {own or other!r} has no place in LAYERS")
            elif RANK[other] >= RANK[own]:
                problems.append(f"{where}: {other!r} is not below {own!r}")
    return problems


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK) | AGENCY_SIDE, packages - set(RANK) - AGENCY_SIDE


def test_imports_point_down_and_the_agency_side_stays_apart() -> None:
    assert _violations() == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: an import from kit up into a domain is reported."""
    module = tmp_path / "m.py"
    module.write_text("from matchhub.audit import service\n")
    assert _imports(module, module_level=True) == [(1, "matchhub.audit")]
    assert RANK["audit"] > RANK["kit"]
