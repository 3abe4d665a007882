"""A study's output folder: per-slice results written atomically, the records that mark them
finished, the settings a rerun must match, and the summary table.

Layout of ``out_dir``::

    <slice>.npy               the reconstruction of each slice (float32, C = 1 squeezed)
    summary.csv, summary.json one row per slice (written when the study ends)
    .study/settings.json      what the study was run with (a rerun must match it)
    .study/rows/<slice>.json  the slice's summary row, written after its .npy: the finished mark

Every file is written to a temporary name in the same folder and moved into place with
``os.replace`` (atomic), so a killed run never leaves a partial file under a final name, and a
.npy without its row is not taken as finished.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

#: summary columns, in order
COLUMNS = ("slice", "status", "iterations", "stop_reason", "objective", "data_fidelity", "wall_time_s", "batch",
           "process", "psnr", "ssim", "output", "error")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and os.replace."""
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """np.save through a temporary file and os.replace."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def _json_value(v):
    """NaN / Inf as null (JSON has no NaN)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def to_json(obj) -> str:
    """JSON text with non-finite floats as null."""
    if isinstance(obj, dict):
        obj = {k: _json_value(v) if not isinstance(v, (dict, list)) else v for k, v in obj.items()}
    return json.dumps(obj, indent=1, default=str)


class StudyStore:
    """The output folder of one study (see the module docstring)."""

    def __init__(self, out_dir: str | Path):
        self.out = Path(out_dir)
        self.rows_dir = self.out / ".study" / "rows"

    def prepare(self, settings: dict, create: bool) -> None:
        """Check ``settings`` against a previous run in the folder; record them if ``create``.

        :raises ValueError: the folder holds a study run with other settings.
        """
        path = self.out / ".study" / "settings.json"
        wanted = json.loads(to_json(settings))
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != wanted:
                diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
                raise ValueError(f"{self.out} holds a study run with other settings ({', '.join(diff)}); "
                                 f"use another output folder, or delete this one to start over")
            return
        if create:
            self.rows_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, to_json(wanted).encode())

    def output_path(self, name: str) -> Path:
        return self.out / f"{name}.npy"

    def row(self, name: str) -> dict | None:
        """The finished row of slice ``name``, or None (not run, failed, or its output is missing)."""
        path = self.rows_dir / f"{name}.json"
        if not path.exists():
            return None
        row = json.loads(path.read_text())
        if row.get("status") == "ok" and not self.output_path(name).exists():
            return None
        return row

    def finished(self, name: str) -> bool:
        """Whether slice ``name`` has a result and its row."""
        row = self.row(name)
        return row is not None and row.get("status") == "ok"

    def save(self, name: str, x: np.ndarray | None, row: dict) -> None:
        """Write the slice's result (if any), then its row: the row marks the slice finished."""
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        if x is not None:
            atomic_save_npy(self.output_path(name), x)
        atomic_write_bytes(self.rows_dir / f"{name}.json", to_json(row).encode())

    def write_summary(self, names: list[str], meta: dict) -> list[dict]:
        """summary.csv and summary.json over ``names`` (slices without a row: status 'not run')."""
        rows = [self.row(n) or {"slice": n, "status": "not run"} for n in names]
        rows = [{c: _json_value(r.get(c)) for c in COLUMNS} for r in rows]
        counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "not run")}
        atomic_write_bytes(self.out / "summary.json", to_json({**meta, **counts, "slices": rows}).encode())
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: "" if r[c] is None else r[c] for c in COLUMNS} for r in rows)
        atomic_write_bytes(self.out / "summary.csv", text.getvalue().encode())
        return rows

    def remove_temporaries(self) -> None:
        """Delete temporary files left by killed runs (never under a final name)."""
        for folder in (self.out, self.rows_dir, self.out / ".study"):
            if folder.is_dir():
                for p in folder.glob(".*.tmp-*"):
                    p.unlink(missing_ok=True)
