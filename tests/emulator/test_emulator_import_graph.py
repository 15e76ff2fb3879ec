"""The emulator's modules import each other one way only, and each piece of URL layout lives in one place.

The import graph is read from the source (every ``import`` statement, at module level or inside a
function or class, or under ``if TYPE_CHECKING:``), so an import hidden in a function or kept for
annotations counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from import_graph import cycles, import_graph, module_files

import airflow_provider_cfbilling.emulator as emulator_package

PACKAGE = "airflow_provider_cfbilling.emulator"
PACKAGE_DIR = Path(emulator_package.__file__).parent


def test_emulator_import_graph_has_no_cycle() -> None:
    graph = import_graph(PACKAGE, PACKAGE_DIR)
    assert f"{PACKAGE}.core" in graph and f"{PACKAGE}.server" in graph  # the walk found the modules
    assert f"{PACKAGE}.server" in graph[f"{PACKAGE}.core"]  # and their imports
    assert cycles(graph) == []


def test_the_api_and_control_layers_do_not_import_the_emulator_class() -> None:
    """Only the facade's own callers (the package, the command line) import ``core``: the server, the
    routes and the control API get the emulator passed in."""
    graph = import_graph(PACKAGE, PACKAGE_DIR)
    importers = sorted(name for name, targets in graph.items() if f"{PACKAGE}.core" in targets)
    assert importers == [PACKAGE, f"{PACKAGE}.cli"]


def test_the_cycle_check_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import c\n    return c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n\n"
        "class C:\n    def m(self):\n        from . import d\n"
    )
    (package / "d.py").write_text("import pkg.b\n")
    graph = import_graph("pkg", package)
    assert graph["pkg.c"] == {"pkg.a", "pkg.d"}  # the TYPE_CHECKING import is an edge too
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.d"]]

    (package / "d.py").write_text("")  # c -> a still closes a -> b -> c
    assert cycles(import_graph("pkg", package)) == [["pkg.a", "pkg.b", "pkg.c"]]

    (package / "c.py").write_text("class C:\n    def m(self):\n        from . import d\n")
    assert cycles(import_graph("pkg", package)) == []


def _string_constants(tree: ast.AST) -> Iterator[str]:
    """String literals that are not docstrings."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


@pytest.mark.parametrize("literal", ["/__emulator__", "/client/v4"])
def test_the_url_prefixes_are_spelled_in_one_module(literal: str) -> None:
    spelled = sorted(
        path.name
        for path in module_files(PACKAGE, PACKAGE_DIR).values()
        if any(literal in text for text in _string_constants(ast.parse(path.read_text(encoding="utf-8"))))
    )
    assert spelled == ["urls.py"]
