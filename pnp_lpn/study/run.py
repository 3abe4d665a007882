"""``solve_study``: reconstruct every slice of a study, in batches, resumably, on every process."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import psnr, ssim
from ..solvers import solve
from .denoising import Denoising
from .launch import Launch, close, launch, wait_for_all
from .settings import study_settings
from .slices import Slice, StudyInput, list_slices
from .store import StudyStore


@dataclass
class StudyResult:
    """Outcome of :func:`solve_study`: the summary rows (every slice; empty on processes other
    than rank 0 under torchrun) and how many slices this call solved."""

    out_dir: Path
    rows: list[dict]
    solved: int

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def n_error(self) -> int:
        return sum(r["status"] == "error" for r in self.rows)


@dataclass
class _Study:
    """What every batch needs."""

    operator: object
    prior: object
    store: StudyStore
    references: list[Slice] | None
    simulate: bool
    seed: int
    solve_kwargs: dict = field(default_factory=dict)
    rank: int = 0

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.operator.img_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.image_shape if self.simulate else tuple(self.operator.meas_shape)


def _slice_ndim(shape: tuple[int, ...]) -> int:
    """Dimensions of one stored slice: a leading single channel is not stored."""
    return len(shape) - 1 if shape[0] == 1 else len(shape)


def solve_study(inputs: StudyInput, operator, prior, out_dir: str | Path, batch_size: int = 8,
                reference: StudyInput | None = None, simulate: bool = False, seed: int = 0,
                progress: bool = True, **solve_kwargs) -> StudyResult:
    """Reconstruct every slice of ``inputs`` with ``solve(y, operator, prior, **solve_kwargs)``.

    :param inputs: measurements of one operator: a .npy/.npz stack (slices first) or an array, a
        folder of image / .npy / DICOM files, or a list of files (:func:`.slices.list_slices`).
    :param operator: a :mod:`pnp_lpn.operators` operator for one slice, or
        :class:`.denoising.Denoising` for one ``prior.denoise`` call per batch; under torchrun
        build it (and the prior) on :func:`pnp_lpn.study.study_device`.
    :param out_dir: one ``<slice>.npy`` per slice and summary.csv / summary.json (columns
        :data:`.store.COLUMNS`; :mod:`.store` describes the folder).
    :param batch_size: slices per solve. Batch k always holds slices [k b, (k + 1) b), so the
        results do not depend on how many processes run or how often the study was resumed.
    :param reference: clean slices, listed like ``inputs`` (the i-th goes with the i-th input),
        for PSNR / SSIM of the result clipped to [0, 1] (data range 1).
    :param simulate: ``inputs`` are clean images: y = A x + noise_sigma e with e drawn from a
        generator seeded by ``seed`` + slice index; they are also the reference.
    :param progress: a progress bar over the slices (rank 0).

    A rerun into the same ``out_dir`` (same settings, else ValueError) skips every batch whose
    slices are all finished; a killed run loses at most the batches in flight. A slice that
    cannot be read or has the wrong shape gets status "error" and its message in the summary,
    and the rest of its batch goes on; failed slices are retried by a rerun. Under torchrun
    (WORLD_SIZE > 1) process r solves the batches k with k % WORLD_SIZE == r and rank 0 writes
    the summary once all are done.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if simulate and reference is not None:
        raise ValueError("with simulate=True the clean inputs are the reference; pass no reference")
    if isinstance(inputs, (str, Path)) and Path(inputs).is_dir() and Path(inputs).resolve() == Path(out_dir).resolve():
        raise ValueError(f"the output folder {out_dir} is the input folder: its results would be read as inputs")
    where = launch()
    slices, references = _list(inputs, reference, operator, simulate)
    settings = study_settings(operator, prior, batch_size, simulate, seed, solve_kwargs)
    study = _Study(operator, prior, _open_store(out_dir, settings, where), references, simulate, seed,
                   dict(solve_kwargs), where.rank)
    batches = [slices[i:i + batch_size] for i in range(0, len(slices), batch_size)]
    mine = [b for k, b in enumerate(batches) if where.owns(k)]
    solved = _run_batches(study, mine, batch_size, progress and where.rank == 0)
    wait_for_all(where)
    rows: list[dict] = []
    if where.rank == 0:
        study.store.remove_temporaries()
        rows = study.store.write_summary([s.name for s in slices], {"settings": settings,
                                                                    "processes": where.world_size})
    wait_for_all(where)
    close(where)
    return StudyResult(Path(out_dir), rows, solved)


def _list(inputs: StudyInput, reference: StudyInput | None, operator, simulate: bool
          ) -> tuple[list[Slice], list[Slice] | None]:
    """The input slices and the reference slices (one per input, or None)."""
    image_ndim = _slice_ndim(tuple(operator.img_size))
    slices = list_slices(inputs, image_ndim if simulate else _slice_ndim(tuple(operator.meas_shape)))
    references = list_slices(reference, image_ndim) if reference is not None else None
    if references is not None and len(references) != len(slices):
        raise ValueError(f"reference has {len(references)} slices but the inputs have {len(slices)}")
    return slices, references


def _open_store(out_dir: str | Path, settings: dict, where: Launch) -> StudyStore:
    """The output folder, checked against ``settings`` (rank 0 records them first)."""
    store = StudyStore(out_dir)
    if where.rank == 0:
        store.prepare(settings, create=True)
    wait_for_all(where)
    if where.rank != 0:
        store.prepare(settings, create=False)
    return store


def _run_batches(study: _Study, batches: list[list[Slice]], batch_size: int, progress: bool) -> int:
    """Solve the batches that are not finished; returns the number of slices solved."""
    todo = [(b[0].index // batch_size, b) for b in batches if not all(study.store.finished(s.name) for s in b)]
    total = sum(len(b) for b in batches)
    bar = tqdm(total=total, initial=total - sum(len(b) for _, b in todo), unit="slice", desc="study",
               disable=not progress)
    solved = 0
    for k, batch in todo:
        solved += _run_batch(study, k, batch)
        bar.update(len(batch))
    bar.close()
    return solved


def _read(study: _Study, s: Slice) -> tuple[np.ndarray | None, str | None]:
    """The slice's values in the operator's input shape, or the reason it cannot be used."""
    try:
        data = s.load(color=study.image_shape[0] == 3).data
    except ValueError as e:
        return None, str(e)
    expected = study.input_shape
    stored = expected[1:] if expected[0] == 1 else expected
    if data.shape != stored:
        what = "clean image" if study.simulate else "measurement"
        return None, f"{s.name}: {what} of shape {data.shape}, expected {stored}"
    if not np.isfinite(data).all():
        return None, f"{s.name}: contains NaN or Inf values"
    return data.reshape(expected), None


def simulate_measurements(operator, x: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """y = A x + noise_sigma e for a batch x, e of image i drawn from a generator seeded with seeds[i]
    (on the CPU, so the same on every device and in every batch)."""
    sigma = float(getattr(operator, "noise_sigma", 0.0) or 0.0)
    y = operator.A(x)
    noise = torch.stack([torch.randn(y.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])
    return y + sigma * noise.to(y.device, y.dtype)


def _run_batch(study: _Study, k: int, batch: list[Slice]) -> int:
    """Solve the readable slices of batch ``k`` together and store each result and row."""
    read = {s.name: _read(study, s) for s in batch}
    for s in batch:
        if read[s.name][1] is not None:
            study.store.save(s.name, None, {"slice": s.name, "status": "error", "batch": k, "process": study.rank,
                                            "error": read[s.name][1]})
    good = [s for s in batch if read[s.name][1] is None]
    if not good:
        return 0
    device = study.operator._device if hasattr(study.operator, "_device") else torch.device("cpu")
    data = torch.from_numpy(np.stack([read[s.name][0] for s in good])).to(device)
    y = simulate_measurements(study.operator, data, [study.seed + s.index for s in good]) if study.simulate else data
    t0 = time.perf_counter()
    try:
        if isinstance(study.operator, Denoising):
            result = study.operator.reconstruct(y, study.prior)
        else:
            result = solve(y, study.operator, study.prior, **study.solve_kwargs)
    except (ValueError, RuntimeError) as e:
        for s in good:
            study.store.save(s.name, None, {"slice": s.name, "status": "error", "batch": k, "process": study.rank,
                                            "error": f"solve failed: {' '.join(str(e).split())}"})
        return 0
    wall = (time.perf_counter() - t0) / len(good)
    scores = _scores(study, result.x, good, data if study.simulate else None)
    for i, s in enumerate(good):
        trace = _trace(result.per_sample, i)
        row = {"slice": s.name, "status": "ok", "batch": k, "process": study.rank, "wall_time_s": wall,
               "stop_reason": _stop_reason(result, trace["iterations"]), "output": study.store.output_path(s.name).name,
               **trace, **scores[i]}
        x = result.x[i].detach().cpu().numpy().astype(np.float32)
        study.store.save(s.name, x[0] if x.shape[0] == 1 else x, row)
    return len(good)


def _stop_reason(result, iterations: int) -> str:
    """The slice's stop reason: the batch's, or 'ran off' for an image held before the batch stopped."""
    if iterations < result.n_iter:
        return f"ran off: held at iteration {iterations} (left the prior's training range)"
    return result.stop_reason


def _trace(per_sample: dict[str, torch.Tensor], i: int) -> dict:
    """Iterations of image i (held images stop early: NaN after) and its last objective and data term."""
    data = per_sample["data_fidelity"][:, i]
    done = torch.isfinite(data)
    out = {"iterations": int(done.sum())}
    for key in ("objective", "data_fidelity"):
        values = per_sample[key][:, i][done] if key in per_sample else torch.empty(0)
        out[key] = float(values[-1]) if len(values) else math.nan
    return out


def _scores(study: _Study, x: torch.Tensor, batch: list[Slice], clean: torch.Tensor | None) -> list[dict]:
    """PSNR / SSIM of each result clipped to [0, 1] against its reference (empty dicts without one)."""
    if clean is None and study.references is None:
        return [{} for _ in batch]
    rows = []
    for i, s in enumerate(batch):
        ref, problem = (clean[i], None) if clean is not None else _reference(study, s)
        if ref is None:
            rows.append({"error": f"reference: {problem}"})
            continue
        xi, ref = x[i:i + 1].detach().cpu().clamp(0, 1), ref.reshape(1, *study.image_shape).cpu()
        rows.append({"psnr": float(psnr(xi, ref)[0]), "ssim": float(ssim(xi, ref)[0])})
    return rows


def _reference(study: _Study, s: Slice) -> tuple[torch.Tensor | None, str | None]:
    """The clean reference of slice ``s`` (or why there is none)."""
    ref = study.references[s.index]
    try:
        data = ref.load(color=study.image_shape[0] == 3).data
    except ValueError as e:
        return None, str(e)
    stored = study.image_shape[1:] if study.image_shape[0] == 1 else study.image_shape
    if data.shape != stored:
        return None, f"{ref.name}: shape {data.shape}, expected {stored}"
    return torch.from_numpy(data), None
