"""The shape of ``src/cicd``: its layers, imports, sizes, for tests and the docs.

``python -m tools.architecture`` prints the package tree with line counts, the
largest modules and functions, and any import that points up a layer or goes round
in a circle. ``tests/unit/test_unit_architecture.py`` holds the code to the same
rules, and the architecture page of the docs quotes this output.

Only module-level imports count (``TYPE_CHECKING`` blocks included): an import
inside a function runs when called, so it cannot make a circle at load time, but it
still may not point up a layer.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top; a module may import from its own layer or any layer below.
LAYERS: tuple[str, ...] = (
    "core",
    "commands",
    "transport",
    "runtime",
    "checks",
    "host",
    "ci",
    "reporting",
    "pipeline",
    "tasks",
    "",  # the top: entry points (cli, demo, __main__) and the package itself
)

#: Limits the code is held to (issue 25).
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500
MAX_TOTAL_LINES = 15_000


@dataclass
class Module:
    """One module of the package and what it imports."""

    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)
    late_imports: set[str] = field(default_factory=set)
    functions: dict[str, int] = field(default_factory=dict)

    @property
    def layer(self) -> str:
        """The layer this module belongs to (``""`` for the top)."""
        parts = self.name.split(".")
        if len(parts) > 2 or (len(parts) == 2 and (self.path.name == "__init__.py")):
            return parts[1]
        return ""


def _name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(target: str, known: set[str]) -> str:
    """The package module an imported name lives in (a module, or its parent)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def _imports(tree: ast.Module, known: set[str]) -> tuple[set[str], set[str]]:
    top: set[str] = set()
    late: set[str] = set()

    def visit(node: ast.AST, inside_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = inside_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            names: list[str] = []
            if isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            elif isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            for name in names:
                if name.split(".")[0] == "cicd":
                    (late if nested else top).add(_resolve(name, known))
            visit(child, nested)

    visit(tree, False)
    return top, late


def _functions(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Every function with its length in lines, docstring included."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            yield node.name, node.end_lineno - node.lineno + 1


def modules(src: Path = SRC) -> dict[str, Module]:
    """Every module of ``cicd`` under ``src``, by dotted name."""
    paths = sorted((src / "cicd").rglob("*.py"))
    known = {_name(path, src) for path in paths}
    found: dict[str, Module] = {}
    for path in paths:
        text = path.read_text()
        tree = ast.parse(text)
        module = Module(_name(path, src), path, len(text.splitlines()))
        module.imports, module.late_imports = _imports(tree, known)
        module.imports.discard(module.name)
        module.late_imports.discard(module.name)
        for function, length in _functions(tree):
            module.functions[f"{function}:{length}"] = length
        found[module.name] = module
    return found


def upward(found: dict[str, Module]) -> list[tuple[str, str]]:
    """Imports (module-level or not) that reach a higher layer."""
    bad = []
    for module in found.values():
        rank = LAYERS.index(module.layer)
        for target in sorted(module.imports | module.late_imports):
            if target == "cicd":
                continue  # the package itself: __version__ only
            if LAYERS.index(found[target].layer) > rank:
                bad.append((module.name, target))
    return bad


def circles(found: dict[str, Module]) -> list[list[str]]:
    """Circles of module-level imports, each as the path that closes it."""
    seen: set[str] = set()
    result: list[list[str]] = []

    def walk(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :]
            key = min(cycle[i:] + cycle[:i] for i in range(len(cycle)))
            if key not in result:
                result.append(key)
            return
        if name in seen:
            return
        for target in sorted(found[name].imports):
            if target in found and target != "cicd":
                walk(target, path + [name])
        seen.add(name)

    for name in sorted(found):
        walk(name, [])
    return result


def long_functions(found: dict[str, Module]) -> list[tuple[str, int]]:
    """Functions over :data:`MAX_FUNCTION_LINES`, longest first."""
    rows = [
        (f"{module.name}.{key.split(':')[0]}", length)
        for module in found.values()
        for key, length in module.functions.items()
        if length > MAX_FUNCTION_LINES
    ]
    return sorted(rows, key=lambda row: -row[1])


def tree(found: dict[str, Module]) -> list[str]:
    """The package tree, one line per package with its lines and modules."""
    packages: dict[str, list[Module]] = {}
    for module in found.values():
        packages.setdefault(module.layer, []).append(module)
    rows = []
    for layer in reversed(LAYERS):
        members = packages.get(layer, [])
        total = sum(m.lines for m in members)
        label = f"cicd.{layer}" if layer else "cicd (top)"
        rows.append(f"{label:<18} {total:>6} lines  {len(members):>2} modules")
    return rows


def main() -> int:
    """Print the report; exit 1 if a rule is broken."""
    found = modules()
    total = sum(m.lines for m in found.values())
    print("\n".join(tree(found)))
    print(f"{'total':<18} {total:>6} lines  {len(found):>2} modules")
    print("\nlargest modules:")
    for module in sorted(found.values(), key=lambda m: -m.lines)[:8]:
        print(f"  {module.lines:>5}  {module.name}")
    print(f"\nfunctions over {MAX_FUNCTION_LINES} lines:")
    for name, length in long_functions(found):
        print(f"  {length:>5}  {name}")
    bad = upward(found)
    rings = circles(found)
    print("\nimports that point up:", *(f"\n  {a} -> {b}" for a, b in bad))
    print("circles:", *("\n  " + " -> ".join(ring + ring[:1]) for ring in rings))
    return 1 if bad or rings else 0


if __name__ == "__main__":
    sys.exit(main())
