"""Export the real CT slices inside pydicom's wheel as images for ``pnp-lpn bench --images``.

    python benchmarks/export_pydicom_ct.py [--size 128] [--out out/ct-real]
    pnp-lpn bench --images out/ct-real --tasks ct-60 --size 128 ...

pydicom ships a few real CT slices as test files (a thoracic spine crop, two axial head
slices); no prior of this package trained on them or on any anatomy, and nothing was selected
on them. Every decodable file of modality CT becomes one ``.npy`` array: Hounsfield units
(rescale slope and intercept applied) mapped linearly from [``--hu-min``, ``--hu-max``] to
[0, 1] and clipped, then its centre square area-resampled to ``--size`` x ``--size`` (a
slice smaller than that is skipped). Offline: the files are in the installed pydicom package.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def ct_slices() -> dict[str, np.ndarray]:
    """name -> Hounsfield-unit array of every decodable CT test file of pydicom."""
    import pydicom
    import pydicom.data

    out = {}  # the files inside the wheel (get_testdata_files would try to download more)
    for path in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*.dcm")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                if ds.get("Modality") != "CT":
                    continue
                pixels = ds.pixel_array.astype(np.float64)
            except Exception:  # files that exercise broken or undecodable encodings
                continue
        if pixels.ndim == 2:
            out[Path(path).stem] = pixels * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    return out


def to_unit(hu: np.ndarray, hu_min: float, hu_max: float, size: int) -> np.ndarray:
    """HU -> [0, 1] by the window [hu_min, hu_max], centre square area-resampled to size x size
    (float32; the slice is at least size x size)."""
    unit = np.clip((hu - hu_min) / (hu_max - hu_min), 0.0, 1.0)
    side = min(unit.shape)
    top, left = (unit.shape[0] - side) // 2, (unit.shape[1] - side) // 2
    square = torch.from_numpy(unit[top:top + side, left:left + side].copy())[None, None]
    return F.interpolate(square, size=(size, size), mode="area")[0, 0].float().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--hu-min", type=float, default=-1000.0)
    ap.add_argument("--hu-max", type=float, default=2000.0)
    ap.add_argument("--out", default="out/ct-real")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, hu in ct_slices().items():
        if min(hu.shape) < args.size:
            print(f"{name}: {hu.shape} is smaller than --size {args.size}: skipped")
            continue
        np.save(out / f"{name}.npy", to_unit(hu, args.hu_min, args.hu_max, args.size))
        print(f"{name}: {hu.shape} -> {out / name}.npy")


if __name__ == "__main__":
    main()
