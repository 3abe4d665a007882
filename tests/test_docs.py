"""docs/api.md is generated from the docstrings (docs/gen_api.py) and must stay current."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEN_API = ROOT / "docs" / "gen_api.py"


def _gen_api():
    spec = importlib.util.spec_from_file_location("gen_api", GEN_API)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_api"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_current():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(GEN_API), "--check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        "docs/api.md is stale: run `python docs/gen_api.py` and commit the result\n"
        + proc.stdout + proc.stderr)


def test_public_objects_have_docstrings():
    gen_api = _gen_api()
    entries = gen_api.public_objects()
    sections = {e.section for e in entries}
    assert sections == {title for title, _ in gen_api.SECTIONS}, sections
    missing = [f"{e.public_name} ({e.kind}, defined in {e.defined_in})"
               for e in entries if not e.doc.strip()]
    assert not missing, "public objects without a docstring:\n  " + "\n  ".join(missing)


# --- every code block of README.md and docs/*.md runs -------------------------------------------
#
# ```python blocks run in order, one namespace per page, in a temporary working folder (so what
# they write stays out of the tree). A block that needs minutes (training, the full benchmark)
# is marked by the HTML comment `<!-- no-test: reason -->` on the line before its fence; keep
# those few. ```bash blocks are checked without running them: every `pnp-lpn ...` line parses
# with the CLI's own parser, every script it names exists and every `make` target is defined.

import re
import shlex

import pytest

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
