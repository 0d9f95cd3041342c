"""The package layout shows the architecture: no import circles, no import that runs back up the layers, no flat
command or cache modules at the package root."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "inbedder"

# Low to high: a module may import only from its own layer or a lower one. The longest matching prefix decides.
LAYERS = [
    ["version", "errors"],
    ["choices", "fingerprint", "prompts", "inputs"],
    ["model_parts", "converted", "registry", "model_files", "machine", "speed", "onnx_backend", "adapters", "encoders",
     "cache.packed", "cache.store", "cache.directory", "cache"],
    ["finishing", "encode_settings", "batching", "long_text", "multi_instruction", "reencoding", "engine"],
    ["loading"],
    ["load_free"],
    ["io"],
    ["apps", "evaluation", "training"],
    ["compat", "integrations", "distributed", "serve", "client", "data"],
    ["cli", "__main__", ""],
]


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (at the top, inside functions and under TYPE_CHECKING alike)."""
    mods = modules()

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in mods.items():
        package = name if is_package else name.rpartition(".")[0]
        out: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out.update(known(a.name) for a in node.names if a.name.split(".")[0] == "inbedder")
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                if base.split(".")[0] != "inbedder":
                    continue
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else known(base) for a in node.names)
        graph[name] = {m for m in out if m is not None and m != name}
    return graph


def layer(module: str) -> int:
    name = module.removeprefix("inbedder").removeprefix(".")
    best, found = -1, None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".") or prefix == "") and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{module} has no layer in LAYERS"
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "inbedder.loading" in graph["inbedder.load_free"]  # imported inside load_remembered
    assert "inbedder.engine" in graph["inbedder.loading"]


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_no_import_runs_back_up() -> None:
    graph = import_graph()
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) > layer(a))
    assert upward == []


def test_the_package_root_is_imported_by_nothing_inside() -> None:
    assert sorted(a for a, targets in import_graph().items() if "inbedder" in targets) == []


def test_no_flat_command_or_cache_modules_at_the_root() -> None:
    flat = sorted(p.name for p in PACKAGE.glob("*.py")
                  if p.name.startswith(("cli_", "cache")) or p.name in ("cli.py", "packed.py"))
    assert flat == []
    assert (PACKAGE / "cli" / "common.py").is_file()


def test_cli_common_imports_no_command() -> None:
    """Only the option specs (data, no command) of the command line."""
    assert {m for m in import_graph()["inbedder.cli.common"] if m.startswith("inbedder.cli")} <= {
        "inbedder.cli.option_specs"}


def private_uses() -> list[str]:
    """``from .x import _name`` of a package module, and ``obj._name`` on anything but ``self``/``cls``/``super()``
    where ``_name`` is defined in another package module."""
    mods = modules()
    defined: dict[str, set[str]] = {}
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, (path, _) in mods.items()}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name.startswith("_") \
                    and not node.name.startswith("__"):
                defined.setdefault(node.name, set()).add(name)
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("inbedder")):
                found += [f"{name}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr in defined and name not in defined[node.attr]:
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")) and not (
                        isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super"):
                    found.append(f"{name}: .{node.attr} (defined in {sorted(defined[node.attr])})")
    return sorted(found)


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_uses() == []
