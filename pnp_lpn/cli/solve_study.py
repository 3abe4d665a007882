"""``pnp-lpn solve`` on a study: several files, a folder or a stack (see :mod:`pnp_lpn.study`)."""

from __future__ import annotations

import argparse
import os

import numpy as np

from .common import UsageError, note
from .solve_setup import (image_shape, make_operator, make_prior, measurement_problem, read_mask, reads_images,
                          solve_box)


def _first_readable(slices: list, args: argparse.Namespace) -> tuple[str, np.ndarray]:
    """The name and values of the first slice that can be read (its notes on stderr): they set the
    image size."""
    from ..image_files import range_note

    problems = []
    for s in slices:
        try:
            loaded = s.load(args.color)
        except ValueError as e:
            problems.append(str(e))
            continue
        note("solve", f"{loaded.note} (first of {len(slices)} slices)")
        if reads_images(args) and (msg := range_note(loaded.data)):
            note("solve", f"{s.name}: {msg}")
        return s.name, loaded.data
    raise UsageError(f"none of the {len(slices)} inputs can be read; the first: {problems[0]}")


def run_study(args: argparse.Namespace, slice_ndim: int) -> int:
    """Reconstruct every slice into --out (one .npy each, summary.csv / summary.json)."""
    from ..study.slices import list_slices

    inputs = args.input if len(args.input) > 1 else args.input[0]
    slices = list_slices(inputs, slice_ndim)
    name, first = _first_readable(slices, args)
    size = image_shape(args, first) if reads_images(args) else (1, args.size, args.size)
    mask = read_mask(args, size[1:])
    if args.reference is not None and args.simulate:
        raise UsageError("--reference with --simulate: the clean inputs are the reference already")
    if args.reference is not None and not os.path.exists(args.reference):
        raise UsageError(f"--reference {args.reference}: not found")
    from ..study import Denoising, solve_study, study_device

    device = study_device()
    op = Denoising(size, args.noise, device) if args.operator == "denoise" else make_operator(args, size, mask, device)
    if not args.simulate and (problem := measurement_problem(args, first.shape, op)):
        raise UsageError(f"{name}: {problem}")
    result = solve_study(inputs, op, make_prior(args, device=device), args.out, batch_size=args.batch_size,
                         reference=args.reference, simulate=args.simulate, seed=args.seed,
                         progress=not args.quiet, method=args.method, lam=args.lam, max_iter=args.iters,
                         tol=args.tol, step=args.step, box=solve_box(args, op), continuation=args.continuation)
    if result.rows:  # rank 0 (or the only process)
        print(f"{len(result.rows)} slices: {result.n_ok} reconstructed, {result.n_error} failed "
              f"({result.solved} solved now); wrote {args.out}/summary.csv, summary.json")
        for row in result.rows:
            if row["status"] == "error":
                note("solve", f"{row['slice']}: {row['error']}")
    return 0 if result.n_error == 0 else 1
