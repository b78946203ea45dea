"""The shape the code promises: handlers hold no SQL, and the service's packages import each
other without cycles (checked on the source, so a new import that closes a cycle fails here)."""

from __future__ import annotations

import ast
import re

from tests.support.paths import REPO

SERVICE = REPO / "service"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET|WHERE)\b", re.S)


def strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_handlers_hold_no_sql():
    found = {}
    for path in sorted((SERVICE / "handlers").glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {ast.get_docstring(n, clean=False) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef))}
        hits = [s for s in strings(tree) if s not in docstrings and SQL.search(s)]
        if hits:
            found[path.name] = hits
    assert not found, found


def unit(module: str) -> str:
    """The package-level unit a module belongs to: ``service.mail.outbox`` -> ``mail``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SERVICE.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        here = unit(".".join(rel.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("service."):
                    there = unit(name)
                    if there != here:
                        graph.setdefault(here, set()).add(there)
    return graph


def test_packages_import_each_other_without_cycles():
    graph = import_graph()
    # The two cycles there were: auth <-> moderation and mail <-> moderation.
    assert "moderation" not in graph.get("auth", set())
    assert "mail" not in graph.get("moderation", set())
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
