"""The import boundaries: lint-imports keeps every contract, and each contract can break.

The contracts live in pyproject.toml (``[tool.importlinter]``). lint-imports
runs from the repository root, where the source folder ``adapters/`` is the
top-level package ``adapters``. A check that could not fail would prove
nothing, so each contract is also broken on purpose, in a copy of the tree.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contracts(root: Path = ROOT) -> list[dict[str, Any]]:
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def contract_names(root: Path = ROOT) -> list[str]:
    return [contract["name"] for contract in contracts(root)]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary lines."""
    found = re.findall(r"^(.+?) (KEPT|BROKEN)\b", output, flags=re.MULTILINE)
    return dict(found)


def test_the_contracts_name_real_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    modules = grimp.build_graph("seatgate", "adapters", cache_dir=None).modules
    named = {
        name
        for contract in contracts()
        for key in ("source_modules", "forbidden_modules", "ancestors")
        for name in contract.get(key, [])
        if name.split(".")[0] in ("seatgate", "adapters")
    }
    # A package renamed or moved must not silently drop out of a contract.
    assert "seatgate.storage" in named
    assert named - modules == set()


def test_lint_imports_keeps_every_contract() -> None:
    names = contract_names()
    assert len(names) >= 4
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert verdicts(done.stdout) == dict.fromkeys(names, "KEPT")
    assert f"Contracts: {len(names)} kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "seatgate/audit/log.py",
            "import flask",
            "Domain packages import no adapter, no CLI, no web or directory library",
        ),
        (
            "seatgate/licensing/report.py",
            "from seatgate.cli import output",
            "Domain packages import no adapter, no CLI, no web or directory library",
        ),
        (
            "seatgate/imports/check.py",
            "import adapters.csv",
            "Domain packages import no adapter, no CLI, no web or directory library",
        ),
        (
            "seatgate/storage/settings.py",
            "from seatgate.seats import state",
            "Storage imports no domain module",
        ),
        (
            "adapters/flask/api.py",
            "from seatgate.cli import output",
            "Adapters never import the CLI",
        ),
        (
            "seatgate/storage/db.py",
            "from seatgate.storage import locks",
            "No import cycles between packages of seatgate or adapters, at any depth",
        ),
        (
            "seatgate/seats/usage.py",
            "from seatgate.accounts import service",
            "No import cycles between packages of seatgate or adapters, at any depth",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = copy_tree(tmp_path)
    assert contract in contract_names(copy)
    assert lint_imports(copy).returncode == 0
    with (copy / module).open("a", encoding="utf-8") as source:
        source.write(f"\n{line}  # noqa\n")

    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert verdicts(done.stdout)[contract] == "BROKEN", done.stdout


def copy_tree(target: Path) -> Path:
    """The packages and the contracts, without caches."""
    for name in ("seatgate", "adapters"):
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


# -- cycles between modules ------------------------------------------------------------------


def module_cycles(graph: grimp.ImportGraph, prefixes: tuple[str, ...]) -> list[list[str]]:
    """Every set of modules (under ``prefixes``) that import each other in a loop."""
    modules = sorted(m for m in graph.modules if m.startswith(prefixes))
    edges = {
        m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n.startswith(prefixes))
        for m in modules
    }
    return strongly_connected(edges)


def strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges.get(child, ()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert module_cycles(graph, ("p.",)) == [["p.a", "p.b", "p.c"]]
    assert strongly_connected({"x": ["y"], "y": []}) == []


def test_no_module_of_seatgate_or_adapters_is_part_of_an_import_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The source folder `adapters/` is a top-level package from the repository root.
    monkeypatch.syspath_prepend(str(ROOT))
    graph = grimp.build_graph("seatgate", "adapters", cache_dir=None)
    assert "seatgate.storage.db" in graph.modules
    assert "adapters.flask.api" in graph.modules
    assert module_cycles(graph, ("seatgate.", "adapters.")) == []


# -- adapters are loaded in one place ---------------------------------------------------------


def dynamic_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import a module by name (importlib or __import__)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                lines.append(node.lineno)
    return lines


def test_only_the_composition_root_loads_modules_by_name() -> None:
    found = {
        str(path.relative_to(ROOT)): lines
        for folder in ("seatgate", "adapters")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := dynamic_imports(path))
    }
    assert list(found) == ["seatgate/app.py"]
    assert len(found["seatgate/app.py"]) == 1
