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
