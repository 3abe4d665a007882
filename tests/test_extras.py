"""Optional dependencies: each belongs to an extra of pyproject.toml, and code that needs a
missing one raises an ImportError naming the pip command that installs it."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pnp_lpn._extras import OPTIONAL, require

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


def _extra(name: str) -> set[str]:
    """Distributions an extra installs, with the extras it names (pnp-lpn[a,b]) expanded."""
    out = set()
    for req in PYPROJECT["project"]["optional-dependencies"][name]:
        if m := re.fullmatch(r"pnp-lpn\[(.+)\]", req):
            out |= set().union(*(_extra(e) for e in m.group(1).split(",")))
        else:
            out.add(re.split(r"[<>=!~;\[ ]", req)[0])
    return out


def test_every_optional_module_is_in_its_extra_and_not_a_dependency():
    core = {re.split(r"[<>=!~;\[ ]", r)[0] for r in PYPROJECT["project"]["dependencies"]}
    for module, (dist, extra) in OPTIONAL.items():
        assert dist in _extra(extra), f"{dist} ({module}) is not in the {extra!r} extra"
        assert dist in _extra("all") and dist not in core, dist
    assert _extra("bench") >= _extra("ct") | _extra("train") | _extra("baselines")


def test_deepinv_pinned_to_the_tested_minor_version():
    assert "deepinv>=0.5,<0.6" in PYPROJECT["project"]["dependencies"]


@pytest.mark.parametrize("module", sorted(OPTIONAL))
def test_missing_optional_module_names_its_extra(module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import then raises ImportError
    extra = OPTIONAL[module][1]
    with pytest.raises(ImportError, match=re.escape(f"pip install 'pnp-lpn[{extra}]'")):
        require(module, "this feature")


def test_ct_operator_without_astra_names_the_ct_extra():
    code = ("import sys; sys.modules['astra'] = None\n"
            "import pnp_lpn.operators\n"
            "try:\n    pnp_lpn.operators.ParallelBeamCT\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ParallelBeamCT" in out and "pip install 'pnp-lpn[ct]'" in out
