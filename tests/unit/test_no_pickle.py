"""Project rule: nothing that handles network data may unpickle it (DESIGN §4)."""

from __future__ import annotations

import ast

from support import REPO

SOURCES = ["node-image", "operator", "bench", "tests"]


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_no_module_of_the_project_imports_pickle():
    offenders = []
    files = [p for d in SOURCES for p in (REPO / d).rglob("*.py") if ".venv" not in p.parts]
    assert len(files) > 10  # the scan really looked at the project
    for path in files:
        for module in imported_modules(path):
            if module.split(".")[0] in {"pickle", "cPickle", "dill", "cloudpickle", "_pickle"}:
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert offenders == []
