"""The slices of a study: a stack (.npy with slices first, or an in-memory array), a folder of
files, or a list of files, each slice named and read only when its batch comes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..image_files import ARRAY_SUFFIXES, SUFFIXES, Loaded, load_array, read_input, scale_integers

StudyInput = str | Path | Sequence[str | Path] | np.ndarray


@dataclass(frozen=True)
class Slice:
    """One slice: its position in the study, its name (the output file's stem) and its source."""

    index: int
    name: str
    path: Path | None = None
    stack: np.ndarray | None = None

    def load(self, color: bool = False) -> Loaded:
        """The slice's values as float32 (file notes as in :func:`pnp_lpn.image_files.read_input`)."""
        if self.stack is not None:
            raw = np.asarray(self.stack[self.index])
            values, scale = scale_integers(raw)
            return Loaded(values, f"{self.name}: stack slice {raw.dtype} {raw.shape}{scale}")
        return read_input(self.path, color)


def _natural_key(path: Path) -> list:
    """Sort key with numbers compared as numbers (slice2 before slice10)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _folder_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                    and not p.name.startswith(".")), key=_natural_key)
    if not files:
        raise ValueError(f"{folder}: no input files (expected {', '.join(SUFFIXES)})")
    return files


def _array_ndim(path: Path) -> int | None:
    """Dimensions of the array in a .npy/.npz file (None for other or unreadable files)."""
    if path.suffix.lower() not in ARRAY_SUFFIXES or not path.is_file():
        return None
    try:
        return load_array(path, mmap=True).ndim
    except ValueError:
        return None


def is_study(inputs: StudyInput, slice_ndim: int) -> bool:
    """Whether ``inputs`` hold several slices: a list of more than one file, a folder, or an array
    (file or in memory) with one dimension more than a slice's ``slice_ndim``."""
    if isinstance(inputs, np.ndarray):
        return inputs.ndim == slice_ndim + 1
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if len(paths) != 1:
        return True
    return paths[0].is_dir() or _array_ndim(paths[0]) == slice_ndim + 1


def list_slices(inputs: StudyInput, slice_ndim: int) -> list[Slice]:
    """The slices of ``inputs`` in study order.

    :param inputs: a .npy/.npz stack or an array (slices first), a folder (its image, array and
        DICOM files in natural name order), or a list of files (in the given order; a missing
        file is kept as a slice whose reading fails, reported in the summary).
    :param slice_ndim: dimensions of one slice (2 for grey images and sinograms, 3 for colour
        images, 1 for compressed-sensing vectors).
    :raises ValueError: nothing to read, or two files that would write the same output name.
    """
    if isinstance(inputs, np.ndarray):
        return _stack_slices(inputs, "slice", slice_ndim)
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    if len(paths) == 1 and paths[0].is_dir():
        paths = _folder_files(paths[0])
    elif len(paths) == 1 and _array_ndim(paths[0]) == slice_ndim + 1:
        return _stack_slices(load_array(paths[0], mmap=True), paths[0].stem, slice_ndim)
    if not paths:
        raise ValueError("no input files given")
    names = [p.stem for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"several inputs share the name {duplicates[0]!r} (outputs are named after the input "
                         f"files): rename them or put them in separate studies")
    return [Slice(i, name, path=p) for i, (name, p) in enumerate(zip(names, paths))]


def _stack_slices(stack: np.ndarray, stem: str, slice_ndim: int) -> list[Slice]:
    if stack.ndim != slice_ndim + 1 or len(stack) == 0:
        raise ValueError(f"expected a stack of {slice_ndim}-D slices (slices first), got an array of shape "
                         f"{stack.shape}")
    width = max(4, len(str(len(stack) - 1)))
    return [Slice(i, f"{stem}_{i:0{width}d}", stack=stack) for i in range(len(stack))]
