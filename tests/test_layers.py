"""Package layers, read from the source with ast (nothing is imported): the core never imports
an application, no module imports one of a higher layer, there are no import cycles, and
``import pnp_lpn.priors`` / ``import pnp_lpn.operators`` load none of the heavy optional packages."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pnp_lpn"
#: first part of a module name below pnp_lpn -> layer; a module imports only from its own layer
#: or lower ones. 0: the core (priors with their checkpoint I/O, operators, solvers, data);
#: 1: applications of the core; 2: the benchmark (uses baselines, training data, CT phantoms);
#: 3: the command line. ``pnp_lpn/__init__.py`` offers names of every layer and is left out.
LAYERS = {
    "_checks": 0, "_extras": 0, "_version": 0, "checkpoint": 0, "data": 0, "image_files": 0, "metrics": 0, "noise": 0,
    "operators": 0, "priors": 0, "solvers": 0,
    "baselines": 1, "demo": 1, "inspection": 1, "study": 1, "training": 1,
    "bench": 2,
    "cli": 3,
}
#: packages that ``import pnp_lpn.priors`` and ``import pnp_lpn.operators`` must not load
HEAVY = ("astra", "bm3d", "matplotlib", "skimage", "sklearn", "pywt", "mlxtend", "msgpack", "pydicom")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of pnp_lpn that ``name`` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import mod` imports the submodule pkg.mod where there is one
            out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {m for m in out if m in known}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) - {name} for name, path in modules.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if m != "pnp_lpn" and _layer(m) is None)
    assert not missing, f"modules without a layer in LAYERS: {missing}"


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
              for m, deps in import_graph().items() if m != "pnp_lpn"
              for d in sorted(deps) if d != "pnp_lpn" and _layer(d) > _layer(m)]
    assert not upward, "upward imports:\n  " + "\n  ".join(upward)


def test_core_imports_no_application():
    core = {m: deps for m, deps in import_graph().items() if m != "pnp_lpn" and _layer(m) == 0}
    assert "pnp_lpn.priors.checkpoint" in core and "pnp_lpn.solvers" in core
    bad = [f"{m} imports {d}" for m, deps in core.items() for d in sorted(deps) if d == "pnp_lpn" or _layer(d) != 0]
    assert not bad, "the core imports applications:\n  " + "\n  ".join(bad)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_shadows_the_standard_library():
    shadowing = sorted(m for m in _modules() if m.rpartition(".")[2] in sys.stdlib_module_names and m.count(".") == 1)
    assert not shadowing, f"top-level modules named like standard-library ones: {shadowing}"


@pytest.mark.parametrize("module", ["pnp_lpn", "pnp_lpn.priors", "pnp_lpn.operators"])
def test_import_loads_no_heavy_optional_package(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not out, f"import {module} loads {out}"
