"""Docs: the API reference builds from the docstrings, public objects have docstrings, and
every code block of README.md and docs/*.md runs."""

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: namespaces whose ``__all__`` docs/api.md documents, and the checkpoint functions it lists
NAMESPACES = ["pnp_lpn", "pnp_lpn.operators", "pnp_lpn.solvers", "pnp_lpn.study", "pnp_lpn.training",
              "pnp_lpn.data", "pnp_lpn.baselines"]
CHECKPOINT_NAMES = ["save_prior", "load_prior", "read_metadata", "export_prior"]


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason='mkdocs not installed (pip install -e ".[docs]")')
def test_site_builds_strict(tmp_path):
    """`mkdocs build --strict`: the API reference renders from the docstrings, and no page has a
    broken link or anchor."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def _public_objects():
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            yield f"{namespace}.{name}", getattr(module, name)
    checkpoint = importlib.import_module("pnp_lpn.checkpoint")
    for name in CHECKPOINT_NAMES:
        yield f"pnp_lpn.checkpoint.{name}", getattr(checkpoint, name)


def test_public_objects_have_docstrings():
    missing = []
    for public_name, obj in _public_objects():
        if isinstance(obj, type) or callable(obj):
            own = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
            if not (own or "").strip() or (isinstance(obj, type) and own.startswith(f"{obj.__name__}(")):
                missing.append(public_name)  # (dataclasses make up a signature as docstring)
    assert not missing, "public objects without a docstring:\n  " + "\n  ".join(missing)


def test_api_page_lists_every_namespace():
    text = (ROOT / "docs" / "api.md").read_text()
    for namespace in NAMESPACES + ["pnp_lpn.checkpoint"]:
        assert f"::: {namespace}\n" in text, f"docs/api.md has no '::: {namespace}' block"


# --- every code block of README.md and docs/*.md runs -------------------------------------------
#
# ```python blocks run in order, one namespace per page, in a temporary working folder (so what
# they write stays out of the tree). A block that needs minutes (training, the full benchmark)
# is marked by the HTML comment `<!-- no-test: reason -->` on the line before its fence; keep
# those few. ```bash blocks are checked without running them: every `pnp-lpn ...` line parses
# with the CLI's own parser, every script it names exists and every `make` target is defined.

DOC_PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "api.md")]
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
NO_TEST = "<!-- no-test"


def code_blocks(page: Path, language: str) -> list[tuple[int, str]]:
    """(line number, source) of the page's ``language`` blocks that are not marked no-test."""
    text = page.read_text()
    blocks = []
    for m in _FENCE.finditer(text):
        if m.group(1) != language:
            continue
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not before.lstrip().startswith(NO_TEST):
            blocks.append((text.count("\n", 0, m.start()) + 2, m.group(2)))
    return blocks


def _pages_with(language: str) -> list[Path]:
    return [p for p in DOC_PAGES if code_blocks(p, language)]


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", _pages_with("python"), ids=_rel)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib
    import torch

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace = {"__name__": "__docs__"}
    try:
        for line, source in code_blocks(page, "python"):
            exec(compile(source, f"{_rel(page)}, block at line {line}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)


def _shell_commands(source: str) -> list[list[str]]:
    """The block's commands as token lists: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", source)
    commands = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        if tokens:
            commands.append(tokens)
    return commands


def _check_command(tokens: list[str]) -> None:
    from pnp_lpn.cli import build_parser

    if tokens[0].endswith("pnp-lpn"):
        build_parser().parse_args(tokens[1:])
    elif "-m" in tokens and tokens[tokens.index("-m") + 1] == "pnp_lpn.cli":
        build_parser().parse_args(tokens[tokens.index("-m") + 2:])
    elif tokens[0] == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        assert set(tokens[1:]) <= set(targets), f"unknown make target in {tokens}"
    elif tokens[:2] == ["pip", "install"]:
        import tomllib

        extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
        for spec in (t for t in tokens[2:] if not t.startswith("-")):
            local = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", spec)
            if local:
                assert set(filter(None, (local.group(1) or "").split(","))) <= extras, f"unknown extra in {spec}"
            else:
                assert re.fullmatch(r"[\w.-]+==[\w.]+", spec), f"pin the version of {spec}"
    elif tokens[0].endswith("python") or tokens[0].endswith("python3"):
        script = next(t for t in tokens[1:] if not t.startswith("-"))
        assert (ROOT / script).is_file(), f"no script {script}"
    else:
        raise AssertionError(f"no check for the command {shlex.join(tokens)!r}: add one here")


@pytest.mark.parametrize("page", _pages_with("bash"), ids=_rel)
def test_shell_blocks_parse(page):
    for line, source in code_blocks(page, "bash"):
        for tokens in _shell_commands(source):
            try:
                _check_command(tokens)
            except SystemExit as e:  # argparse: unknown option or bad value
                raise AssertionError(f"{_rel(page)}, block at line {line}: {shlex.join(tokens)!r} "
                                     f"does not parse (exit {e.code})") from None
