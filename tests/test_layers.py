"""The package's layers, read from the source with ``ast``: no import circle, data flows one way.

Layers, lowest first (a module may import its own layer and the ones below, never above):

0 foundation  research_lib/{__init__, errors, settings, fs, formatting, calendar}.py
1 core        research_lib/core/      pure computation
2 data        research_lib/data/      files and network
3 records     research_lib/records/   the decision log
4 pipeline    research_lib/pipeline/  decide_on + decide, history, daily report content
5 apps        research_lib/{reporting, ui, backtest, sweep, paper}/
6 cli         research_lib/cli.py, __main__.py — nothing imports it

Every import counts, at module level or inside a function. An import inside a function is allowed only to
keep start-up time down (the command line's lazy loading), and says so in a comment containing
"start-up" on its line or above it (one comment covers a run of consecutive imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import research_lib

PACKAGE = Path(research_lib.__file__).resolve().parent
LAYERS = {"core": 1, "data": 2, "records": 3, "pipeline": 4, "reporting": 5, "ui": 5, "backtest": 5, "sweep": 5,
          "paper": 5, "cli": 6, "__main__": 6}
NAMES = {0: "foundation", 1: "core", 2: "data", 3: "records", 4: "pipeline", 5: "apps", 6: "cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str) -> str:
    """A short public name (``research_lib.gex``) -> the module holding the code."""
    prefix, _, rest = name.partition(".")
    head, _, tail = rest.partition(".")
    if prefix == "research_lib" and head in research_lib.MOVED:
        return f"research_lib.{research_lib.MOVED[head]}" + (f".{tail}" if tail else "")
    return name


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def _run_start(node: ast.stmt, parents: dict) -> int:
    """The first line after the statement before the run of import statements ``node`` ends (so one comment
    above consecutive imports covers them all)."""
    parent = parents.get(node)
    for field in ("body", "orelse", "finalbody", "handlers"):
        body = getattr(parent, field, None)
        if isinstance(body, list) and node in body:
            i = body.index(node)
            while i > 0 and isinstance(body[i - 1], ast.Import | ast.ImportFrom):
                i -= 1
            return body[i - 1].end_lineno + 1 if i > 0 else parent.lineno
    return node.lineno


def _imports() -> list[tuple[str, str, int, bool, str]]:
    """(importer, imported, line, inside a function, the source from the statement before its run of
    imports to the import) for every
    ``research_lib`` import of every module."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _module_name(path)
        is_pkg = path.name == "__init__.py"
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        parents = {c: n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = me.split(".") if is_pkg else me.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    mod = node.module or ""
                # "from research_lib.core import gex" imports the module research_lib.core.gex
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules or
                           _resolve(f"{mod}.{a.name}") in modules else mod for a in node.names]
            else:
                continue
            p, in_function, type_only = parents.get(node), False, False
            while p is not None:
                in_function |= isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef)
                type_only |= isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test)
                p = parents.get(p)
            here = "\n".join(lines[_run_start(node, parents) - 1:node.lineno])
            for t in dict.fromkeys(targets):
                t = _resolve(t)
                if t.startswith("research_lib") and t != "research_lib" and t != me:
                    out.append((me, t, node.lineno, in_function and not type_only, here))
    return out


IMPORTS = _imports()


def _circles(edges: list[tuple[str, str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return found


def test_the_reader_sees_the_imports():
    """The reader itself: it finds the function-level and the module-level imports it must judge."""
    pairs = {(a, b) for a, b, *_ in IMPORTS}
    assert ("research_lib.pipeline.decide", "research_lib.core.gex") in pairs
    assert ("research_lib.cli", "research_lib.pipeline.decide") in pairs  # inside a function
    assert _circles([("a", "b"), ("b", "c"), ("c", "a")]) == [["a", "b", "c", "a"]]


def test_no_import_circle():
    # a package's __init__ importing its own submodules is not a circle of two modules
    edges = [(a, b) for a, b, *_ in IMPORTS if not b.startswith(a + ".")]
    circles = _circles(edges)
    assert not circles, "import circle: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("importer, imported, line", [(a, b, n) for a, b, n, *_ in IMPORTS])
def test_data_flows_one_way(importer, imported, line):
    assert not imported.startswith("research_lib.cli") or importer == "research_lib.__main__", (
        f"{importer} (line {line}) imports {imported}: nothing imports the command line")
    lo, hi = _layer(importer), _layer(imported)
    assert hi <= lo, (f"{importer} ({NAMES[lo]}, line {line}) imports {imported} ({NAMES[hi]}): "
                      f"a lower layer never imports a higher one")


def test_function_level_imports_say_they_buy_start_up_time():
    bad = [f"{a} line {n} imports {b}" for a, b, n, inside, here in IMPORTS
           if inside and "start-up" not in here]
    assert not bad, "imports inside functions without a start-up comment:\n" + "\n".join(bad)
