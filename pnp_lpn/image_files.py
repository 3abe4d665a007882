"""Reading user files: images of every common mode, NumPy arrays and DICOM slices.

Every reader returns a :class:`Loaded`: a float32 array and a one-line note saying what was
done to the file's channels and values, so that nothing enters a solver silently rescaled.

* Images (PNG, JPEG, TIFF, BMP, GIF, WebP): 1-bit, 8- and 16-bit grey, grey + alpha, palette,
  RGB, RGBA, CMYK. Integers are divided by their bit depth's maximum (255, 65535; 1-bit: 0/1)
  into [0, 1]; alpha is dropped; colour is averaged to grey, or kept as (3, H, W) with
  ``color=True`` (a grey image is then repeated on r, g, b).
* ``.npy`` / ``.npz`` (a single array): kept as stored; unsigned integer and bool arrays are
  scaled to [0, 1] like images.
* DICOM (``.dcm``, needs the ``dicom`` extra: ``pip install pnp-lpn[dicom]``): the stored values
  with RescaleSlope and RescaleIntercept applied (real-world units, e.g. Hounsfield units).

Only NumPy and Pillow are imported here, so files are checked before torch is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUFFIXES = ARRAY_SUFFIXES + IMAGE_SUFFIXES + DICOM_SUFFIXES
#: bits per channel of the Pillow modes read as integers
_MODE_BITS = {"1": 1, "L": 8, "LA": 8, "P": 8, "PA": 8, "RGB": 8, "RGBA": 8, "RGBX": 8, "CMYK": 8, "YCbCr": 8,
              "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16}


@dataclass
class Loaded:
    """A file's content as float32 and the note saying how it was read."""

    data: np.ndarray
    note: str


def read_input(path: str | Path, color: bool = False) -> Loaded:
    """Read an image, array or DICOM file (the module docstring lists what is done to each).

    :param color: images: keep r, g, b as (3, H, W) instead of averaging them to grey (H, W).
    :raises ValueError: the file is missing, unreadable or of an unknown kind.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "not found"
        raise ValueError(f"{path}: {what}")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return read_array(path)
    if suffix in DICOM_SUFFIXES:
        return read_dicom(path)
    if suffix in IMAGE_SUFFIXES:
        return read_image(path, color)
    raise ValueError(f"{path}: unknown file type {suffix or '(no suffix)'!r}; expected one of {', '.join(SUFFIXES)}")


def load_array(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array of a ``.npy`` file (memory-mapped with ``mmap``) or the single array of a ``.npz``."""
    path = Path(path)
    try:
        data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable NumPy file ({e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if len(data.files) != 1:
                raise ValueError(f"{path}: expected one array in the .npz, found {len(data.files)} ({data.files})")
            data = data[data.files[0]]
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        raise ValueError(f"{path}: expected a real numeric array, got dtype {data.dtype}")
    return data


def read_array(path: str | Path) -> Loaded:
    """A ``.npy`` array, or the single array of a ``.npz``, as float32 (unsigned integers scaled to [0, 1])."""
    data = load_array(path)
    values, scale = scale_integers(data)
    return Loaded(values, f"{Path(path).name}: array {data.dtype} {tuple(data.shape)}{scale}")


def scale_integers(data: np.ndarray) -> tuple[np.ndarray, str]:
    """Unsigned integers / bool to [0, 1] by their dtype's maximum; other arrays as float32."""
    if data.dtype == bool:
        return data.astype(np.float32), ", 0/1"
    if np.issubdtype(data.dtype, np.unsignedinteger):
        top = np.iinfo(data.dtype).max
        return (data / top).astype(np.float32), f", scaled by 1/{top} to [0, 1]"
    return data.astype(np.float32), ""


def read_image(path: str | Path, color: bool = False) -> Loaded:
    """An image file as grey (H, W), or r, g, b (3, H, W) with ``color``, in [0, 1]."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        values, mode, bits = _read_tiff(path)
    else:
        values, mode, bits = _read_pillow(path)
    notes = [f"{path.name}: {bits}-bit {mode}"]
    integer = np.issubdtype(values.dtype, np.integer) or values.dtype == bool
    if values.ndim == 3 and values.shape[-1] in (2, 4):
        values = values[..., :-1]
        notes.append("alpha dropped")
    values = _channels(values, color, notes)
    if integer:
        top = 1 if bits == 1 else 2**bits - 1
        values = values.astype(np.float64) / top
        notes.append("0/1" if bits == 1 else f"scaled by 1/{top} to [0, 1]")
    return Loaded(values.astype(np.float32), ", ".join(notes))


def _channels(values: np.ndarray, color: bool, notes: list[str]) -> np.ndarray:
    """(H, W) grey or (H, W, 1|3) to grey (H, W) or, with ``color``, (3, H, W)."""
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim == 3 and values.shape[-1] != 3:
        raise ValueError(f"expected a grey or RGB image, got {values.shape[-1]} channels")
    if color:
        if values.ndim == 2:
            notes.append("grey repeated on r, g, b")
            return np.repeat(values[None], 3, 0)
        notes.append("r, g, b kept")
        return np.moveaxis(values, -1, 0)
    if values.ndim == 3:
        if (values == values[..., :1]).all():
            notes.append("equal r, g, b read as grey")
            return values[..., 0]
        notes.append("r, g, b averaged to grey")
        return values.astype(np.float64).mean(-1)
    return values


def _read_pillow(path: Path) -> tuple[np.ndarray, str, int]:
    """Pixel values (integers as stored), Pillow's mode, bits per channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode, frames = im.mode, getattr(im, "n_frames", 1)
            if mode in ("P", "PA"):
                im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "RGBX", "LAB", "HSV"):
                im = im.convert("RGB")
            values = np.asarray(im)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None
    if mode == "I" and _png_bit_depth(path) == 16:  # older Pillow opens 16-bit grey PNGs as 32-bit "I"
        return values.astype(np.uint16), "I;16", 16
    if mode in ("I", "F"):  # 32-bit integers or floats: no bit depth to divide by
        return values.astype(np.float32), f"{mode} (32-bit values kept)", 32
    if mode not in _MODE_BITS:
        raise ValueError(f"{path}: unsupported image mode {mode!r}")
    bits = _MODE_BITS[mode]
    if frames > 1:
        mode += f" (frame 1 of {frames})"
    if bits == 8 and _png_bit_depth(path) == 16:
        mode += ", 16-bit colour PNG read at 8-bit precision (Pillow's limit; save as 16-bit grey, TIFF or .npy)"
    return values, mode, bits


def _read_tiff(path: Path) -> tuple[np.ndarray, str, int]:
    """The first page of a TIFF through tifffile (keeps 16-bit colour, which Pillow reduces to 8 bits)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page, pages = tif.pages[0], len(tif.pages)
            values = page.asarray()
            planar = values.ndim == 3 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    except Exception as e:  # tifffile raises many kinds of errors on corrupt files
        raise ValueError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from None
    values = np.moveaxis(values, 0, -1) if planar else values
    kind = "TIFF" if pages == 1 else f"TIFF (page 1 of {pages})"
    if values.dtype == bool:
        return values, kind, 1
    if np.issubdtype(values.dtype, np.unsignedinteger):
        return values, kind, values.dtype.itemsize * 8
    return values.astype(np.float32), f"{kind} {values.dtype} (values kept)", 32


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG header (None for other files)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 else None


def read_dicom(path: str | Path) -> Loaded:
    """A single-frame DICOM slice in real-world units: stored values * RescaleSlope + RescaleIntercept."""
    path = Path(path)
    try:
        import pydicom
        from pydicom.pixels import apply_rescale
    except ImportError:
        raise ValueError(f"{path}: reading DICOM needs pydicom: pip install 'pnp-lpn[dicom]'") from None
    try:
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array
    except Exception as e:  # pydicom raises many kinds of errors on corrupt or unsupported files
        raise ValueError(f"{path}: not a readable DICOM image ({type(e).__name__}: {e})") from None
    if stored.ndim != 2:
        raise ValueError(f"{path}: expected a single-frame grey DICOM slice, got pixel data of shape {stored.shape}")
    values = np.asarray(apply_rescale(stored, ds), dtype=np.float32)
    slope, intercept = float(getattr(ds, "RescaleSlope", 1)), float(getattr(ds, "RescaleIntercept", 0))
    unit = f" ({ds.RescaleType})" if "RescaleType" in ds else ""
    return Loaded(values, f"{path.name}: DICOM {stored.dtype} {stored.shape}, values * {slope:g} + {intercept:g}{unit}")


def range_note(data: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> str | None:
    """A note when image values leave [lo, hi], the image range the priors and solvers expect."""
    vmin, vmax = float(np.min(data)), float(np.max(data))
    if vmin >= lo - 1e-6 and vmax <= hi + 1e-6:
        return None
    return (f"values span [{vmin:.4g}, {vmax:.4g}], outside the image range [{lo:g}, {hi:g}] the priors expect; "
            f"rescale the image to [{lo:g}, {hi:g}] (e.g. (v - min) / (max - min)) unless this is intended")


def read_mask(path: str | Path, shape: tuple[int, int]) -> Loaded:
    """An inpainting mask: 1 (or white) = observed pixel, 0 = missing, of shape ``shape`` (H, W)."""
    loaded = read_input(path)
    m = loaded.data
    if m.ndim != 2 or m.shape != tuple(shape):
        raise ValueError(f"{Path(path).name}: the mask must be a grey image of the measurement's shape {tuple(shape)}, "
                         f"got {m.shape}")
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError(f"{Path(path).name}: mask values must lie in [0, 1] (1 = observed), "
                         f"got [{np.nanmin(m):.4g}, {np.nanmax(m):.4g}]")
    kept = float((m > 0).mean())
    return Loaded(m, f"{loaded.note}; mask keeps {kept:.1%} of the pixels")
