"""The package's shape: layers that only point down, no circles, bounded sizes.

The rules and the analysis are :mod:`tools.architecture`'s (``python -m
tools.architecture`` prints the same findings); this test keeps them true.
"""

from __future__ import annotations

from pathlib import Path

from tools import architecture
from tools.architecture import MAX_FUNCTION_LINES, MAX_MODULE_LINES, modules

FOUND = modules()


def test_every_module_is_in_a_layer_and_every_package_says_its_purpose() -> None:
    for module in FOUND.values():
        assert module.layer in architecture.LAYERS, module.name
        if module.path.name == "__init__.py":
            first = module.path.read_text().split("\n", 1)[0]
            assert first.startswith('"""') and first.endswith("."), module.name


def test_the_top_of_the_package_holds_only_entry_points() -> None:
    top = {name for name, m in FOUND.items() if m.layer == "" and name != "cicd"}
    assert top == {"cicd.__main__", "cicd.cli", "cicd.demo"}


def test_no_import_points_up_a_layer() -> None:
    assert architecture.upward(FOUND) == []


def test_no_module_level_imports_go_round_in_a_circle() -> None:
    assert architecture.circles(FOUND) == []


def test_the_circle_finder_finds_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "cicd" / "core"
    package.mkdir(parents=True)
    (tmp_path / "cicd" / "__init__.py").write_text('"""Top."""\n')
    (package / "__init__.py").write_text('"""Core."""\n')
    (package / "a.py").write_text("from cicd.core import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from cicd.core.a import X\n"
    )
    (tmp_path / "cicd" / "tasks").mkdir()
    (tmp_path / "cicd" / "tasks" / "__init__.py").write_text('"""Tasks."""\n')
    (package / "c.py").write_text("def f():\n    from cicd.tasks import x\n")
    found = modules(tmp_path)
    assert architecture.circles(found) == [["cicd.core.a", "cicd.core.b"]]
    assert architecture.upward(found) == [("cicd.core.c", "cicd.tasks")]


def test_no_function_is_longer_than_the_limit() -> None:
    assert architecture.long_functions(FOUND) == [], f"over {MAX_FUNCTION_LINES} lines"


def test_no_module_is_longer_than_the_limit() -> None:
    long = {m.name: m.lines for m in FOUND.values() if m.lines > MAX_MODULE_LINES}
    assert long == {}, f"over {MAX_MODULE_LINES} lines"
