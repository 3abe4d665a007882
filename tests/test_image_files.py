"""pnp_lpn.image_files: every common image mode, NumPy and DICOM files, scaled by what they store."""

import numpy as np
import pytest
from PIL import Image

from pnp_lpn.image_files import range_note, read_input, read_mask

RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (6, 7, 3), dtype=np.uint8)


def _save(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("case", ["1", "L", "I;16", "LA", "P", "RGB", "RGBA"])
def test_every_png_mode_is_scaled_by_its_bit_depth(tmp_path, case):
    """Each mode is written with Pillow from known integers; the reader must return them divided
    by the mode's maximum (1-bit: 0/1), alpha dropped and colour averaged (grey) or kept (color)."""
    grey, rgb = GREY8 / 255, RGB8 / 255
    if case == "1":
        bits = GREY8 > 127
        path, grey_expected = _save(tmp_path, "a.png", bits), bits.astype(float)
    elif case == "L":
        path, grey_expected = _save(tmp_path, "a.png", GREY8), grey
    elif case == "I;16":
        g16 = GREY8.astype(np.uint16) * 257 + 3
        path, grey_expected = _save(tmp_path, "a.png", g16), g16 / 65535
    elif case == "LA":
        path, grey_expected = _save(tmp_path, "a.png", np.dstack([GREY8, 255 - GREY8]), "LA"), grey
    elif case == "P":
        pal = Image.fromarray(RGB8).quantize(16)
        pal.save(tmp_path / "a.png")
        path, grey_expected = tmp_path / "a.png", np.asarray(pal.convert("RGB")).mean(-1) / 255
    elif case == "RGB":
        path, grey_expected = _save(tmp_path, "a.png", RGB8), rgb.mean(-1)
    else:
        path, grey_expected = _save(tmp_path, "a.png", np.dstack([RGB8, GREY8])), rgb.mean(-1)
    loaded = read_input(path)
    assert loaded.data.dtype == np.float32 and loaded.data.shape == (6, 7)
    np.testing.assert_allclose(loaded.data, grey_expected, atol=1e-6)
    assert ("alpha dropped" in loaded.note) == (case in ("LA", "RGBA"))
    assert ("scaled by 1/65535" in loaded.note) == (case == "I;16")
    colour = read_input(path, color=True)
    assert colour.data.shape == (3, 6, 7)
    if case in ("RGB", "RGBA"):
        np.testing.assert_allclose(colour.data, rgb.transpose(2, 0, 1), atol=1e-6)
        assert "r, g, b kept" in colour.note


def test_tiff_keeps_16_bit_colour_and_npy_npz_arrays(tmp_path):
    import tifffile

    rgb16 = RNG.integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb16)
    np.testing.assert_allclose(read_input(tmp_path / "c.tif", color=True).data, rgb16.transpose(2, 0, 1) / 65535,
                               rtol=1e-6)
    tifffile.imwrite(tmp_path / "planar.tif", rgb16.transpose(2, 0, 1), planarconfig="separate", photometric="rgb")
    np.testing.assert_allclose(read_input(tmp_path / "planar.tif", color=True).data, rgb16.transpose(2, 0, 1) / 65535,
                               rtol=1e-6)
    tifffile.imwrite(tmp_path / "pages.tif", rgb16.transpose(2, 0, 1), photometric="minisblack")
    pages = read_input(tmp_path / "pages.tif")  # three grey pages, not one colour image
    assert "page 1 of 3" in pages.note and pages.data.shape == (5, 4)
    np.testing.assert_allclose(pages.data, rgb16[..., 0] / 65535, rtol=1e-6)
    floats = RNG.standard_normal((3, 4)).astype(np.float64)
    np.save(tmp_path / "f.npy", floats)
    np.savez(tmp_path / "f.npz", x=floats)
    for name in ("f.npy", "f.npz"):
        np.testing.assert_allclose(read_input(tmp_path / name).data, floats, rtol=1e-6)
    np.save(tmp_path / "u.npy", GREY8.astype(np.uint16))
    np.testing.assert_allclose(read_input(tmp_path / "u.npy").data, GREY8 / 65535, rtol=1e-6)
    assert "outside the image range [0, 1]" in range_note(floats) and range_note(GREY8 / 255) is None


def test_unreadable_inputs_say_what_is_wrong(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "bad.npy").write_bytes(b"nope")
    (tmp_path / "x.xyz").write_bytes(b"")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    for name, message in [("missing.png", "not found"), ("bad.png", "not a readable image"),
                          ("bad.npy", "not a readable NumPy file"), ("x.xyz", "unknown file type"),
                          ("two.npz", "expected one array")]:
        with pytest.raises(ValueError, match=message):
            read_input(tmp_path / name)


def test_dicom_applies_rescale_slope_and_intercept(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = RNG.integers(0, 4096, (8, 9), dtype=np.uint16)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 9, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024
    ds.PixelData = stored.tobytes()
    ds.save_as(tmp_path / "s.dcm", enforce_file_format=True)
    loaded = read_input(tmp_path / "s.dcm")
    np.testing.assert_allclose(loaded.data, stored * 0.5 - 1024)
    assert "* 0.5 + -1024" in loaded.note


def test_mask_file_must_match_and_lie_in_the_unit_interval(tmp_path):
    mask = (GREY8 > 100).astype(np.uint8) * 255
    path = _save(tmp_path, "m.png", mask)
    np.testing.assert_array_equal(read_mask(path, (6, 7)).data, mask / 255)
    with pytest.raises(ValueError, match=r"shape \(5, 7\)"):
        read_mask(path, (5, 7))
    np.save(tmp_path / "m.npy", np.full((6, 7), 2.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        read_mask(tmp_path / "m.npy", (6, 7))
