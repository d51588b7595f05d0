"""The import layering of ``engine/`` (LAYERS.md, DESIGN.md §5): no package cycle, no module
cycle, every import pointing down the layer table below, and no import hidden under
``TYPE_CHECKING`` to dodge a cycle.

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "engine"

#: Bottom to top. A unit (a sub-package of ``engine``, or a module directly under it) imports
#: units of lower layers only: the units of one layer are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    # foundation: no engine import
    ("errors", "logs", "localtime", "metrics", "fastsql", "payload_kinds", "heap"),
    ("db", "lease"),
    ("database_state", "migrate", "leased_job", "security"),
    # codecs and pure rules: they know no database
    ("hl7v2",),
    ("identity",),
    ("cda",),
    # routing rules, then the mappings and the user-written transform steps
    ("routes",),
    ("transforms",),
    # configuration models: imported by the runtime, import none of it
    ("channels",),
    ("record",),
    # the record store owns every record-store read and write; the journal keeps bytes and states
    ("store",),
    ("journal",),
    ("alerts",),
    # the flow: intake answers before any stage runs; the pipeline runs the stages
    ("intake",),
    ("pipeline",),
    ("adapters",),
    ("distributed",),
    # the web apps, the schema history, process wiring, the CLI
    ("admin", "record_api"),
    ("migrations",),
    ("runtime",),
    ("channeltest",),
    ("cli",),
)
_RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}

#: The rules of LAYERS.md, stated as data: (importer, imported) pairs that must not appear.
FORBIDDEN = (
    ("journal", "cda"),
    ("journal", "hl7v2"),
    ("identity", "journal"),
    ("identity", "store"),
    ("cda", "store"),
    ("cda", "journal"),
    ("hl7v2", "store"),
    ("hl7v2", "journal"),
    ("channels", "adapters"),
    ("channels", "runtime"),
    ("intake", "pipeline"),
    ("pipeline", "runtime"),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    type_only: bool


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ENGINE.rglob("*.py")}


MODULES = _modules()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports() -> Iterator[Import]:
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typed = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                if not base.startswith("engine"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in MODULES else base
                    yield Import(name, target, node.lineno, node.lineno in typed)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("engine."):
                        yield Import(name, alias.name, node.lineno, node.lineno in typed)


IMPORTS = list(_imports())


def unit(module: str) -> str:
    """``engine.pipeline.identify.merge`` -> ``pipeline``; ``engine.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return found


def test_the_import_graph_is_read() -> None:
    # A broken walk would make every check below pass on nothing.
    assert len(MODULES) > 250
    assert any(i.importer == "engine.pipeline.pipeline" for i in IMPORTS)
    assert {unit(m) for m in MODULES} <= set(_RANK) | {"engine"}, "a unit has no layer"


def test_no_package_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        a, b = unit(i.importer), unit(i.imported)
        if a != b:
            edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []


def test_no_module_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        # A package's __init__ importing its own modules is how packages are built: skip it.
        if i.importer != i.imported and not i.imported.startswith(i.importer + "."):
            edges.setdefault(i.importer, set()).add(i.imported)
    assert _cycles(edges) == []


def test_every_import_points_down() -> None:
    upward = sorted(
        f"{i.importer}:{i.line} -> {i.imported}"
        for i in IMPORTS
        if unit(i.importer) != unit(i.imported)
        and unit(i.importer) in _RANK
        and _RANK[unit(i.imported)] >= _RANK[unit(i.importer)]
    )
    assert upward == []


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN, ids=lambda v: str(v))
def test_layers_md_rule(importer: str, imported: str) -> None:
    broken = sorted(
        f"{i.importer}:{i.line} -> {i.imported}"
        for i in IMPORTS
        if unit(i.importer) == importer and unit(i.imported) == imported
    )
    assert broken == []


def test_no_engine_import_under_type_checking() -> None:
    dodges = sorted(f"{i.importer}:{i.line} -> {i.imported}" for i in IMPORTS if i.type_only)
    assert dodges == []


def test_the_checks_catch_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
