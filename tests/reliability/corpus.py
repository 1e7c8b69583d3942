"""Corrupt-input corpus: ≥ 300 bad (and a few benign) inputs derived from the real files in ``../shared/data``.

``build_corpus(shared_data, out_dir, seed=0)`` writes every input under ``out_dir`` (never into the shared
data, which is only read) and returns a list of :class:`Item`. Everything is derived with seeded RNGs, so
the same seed gives byte-identical inputs.

Each item says what a good reader must do with it (``expect``):

* ``"error"``: a one-line :class:`~viewer.io.LoadError` (e.g. zero-byte, random bytes, text named .png);
* ``"flag"``: an error or a load *with* a warning, never a silent load (NaN voxels, missing slices, tilt…);
* ``"any"``: error, warning or a clean load are all acceptable (benign or ambiguous variants);
* ``"load"``: the unmodified real files: they must load (a check that the harness itself works).

Unreadable files are simulated (we run as root, so chmod does not stop reads): items with ``deny=True``
have ``DENY`` in a path component and the runner (:mod:`tests.reliability.runner`) patches ``open``,
``os.open`` and ``os.scandir`` to raise ``PermissionError`` for such paths. A FIFO named like a DICOM file
and a symlink to a character device cover "not a regular file".
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import struct
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

CT_DIR = "dicom/ct_series"
MISC = "dicom/misc"
NIFTI_SRC = "brain_mri/brats_2013_pat0001_1/T1c_subtrMeanDivStd.nii.gz"
NIFTI_INT_SRC = "brain_mri/BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1n.nii.gz"


@dataclass
class Item:
    """One corpus input: ``path`` is relative to the corpus root."""

    name: str
    path: str
    category: str
    expect: str = "any"  # "error" | "flag" | "any" | "load"
    deny: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def shared_inputs(shared: Path) -> list[Path]:
    """Every shared file the corpus (and the other reliability tests) read: checksummed before/after."""
    files = sorted((shared / CT_DIR).iterdir()) + sorted((shared / MISC).iterdir())
    files += [shared / NIFTI_SRC, shared / NIFTI_INT_SRC]
    files += sorted((shared / "cxr" / "images").glob("*.png"))[:3]
    files += sorted((shared / "dermoscopy").rglob("*.jpg"))[:2]
    files += sorted((shared / "head_ct").rglob("*.png"))[:2]
    return [f for f in files if f.is_file()]


class _Builder:
    def __init__(self, shared: Path, out: Path, seed: int, scale: int) -> None:
        self.shared, self.out, self.scale = shared, out, scale
        self.rng = random.Random(seed)
        self.nrng = np.random.default_rng(seed)
        self.items: list[Item] = []
        self.names: set[str] = set()

    # ---- bookkeeping ---------------------------------------------------------------------------
    def path(self, category: str, name: str) -> Path:
        p = self.out / category / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add(self, category: str, path: Path, expect: str = "any", deny: bool = False) -> None:
        rel = str(path.relative_to(self.out))
        assert rel not in self.names, rel
        self.names.add(rel)
        self.items.append(Item(rel.replace("/", ":"), rel, category, expect, deny))

    def write(self, category: str, name: str, data: bytes, expect: str = "any") -> Path:
        p = self.path(category, name)
        p.write_bytes(data)
        self.add(category, p, expect)
        return p

    # ---- sources -------------------------------------------------------------------------------
    def sources(self) -> None:
        s = self.shared
        self.ct_files = sorted((s / CT_DIR).iterdir())
        self.misc = {p.name: p for p in sorted((s / MISC).iterdir())}
        self.ct_j2k = self.ct_files[0]
        # a small uncompressed CT series derived from the real one: same headers and geometry, every 8th
        # pixel (64×64), Explicit VR Little Endian. Series-level damage is done on copies of it.
        self.small_series: list[pydicom.Dataset] = []
        for f in self.ct_files:
            ds = pydicom.dcmread(f)
            arr = ds.pixel_array[::8, ::8].astype(np.uint16)
            ds.PixelData = np.ascontiguousarray(arr).tobytes()
            ds.Rows, ds.Columns = arr.shape
            ps = [float(v) * 8 for v in ds.PixelSpacing]
            ds.PixelSpacing = [f"{v:.6f}" for v in ps]
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77.1"
            self.small_series.append(ds)
        self.small_bytes = [self._bytes(ds) for ds in self.small_series]
        # small NIfTI crops of real brain MRI (float z-scored, and raw int16), plain and gzipped
        import nibabel as nib

        img = nib.load(str(s / NIFTI_SRC))
        crop = np.asarray(img.dataobj[96:144, 96:144, 70:86], dtype=np.float32)
        self.nii_float = nib.Nifti1Image(crop, img.affine, img.header)
        self.nii_float.set_data_dtype(np.float32)
        img2 = nib.load(str(s / NIFTI_INT_SRC))
        crop2 = np.asarray(img2.dataobj[96:144, 96:144, 70:86]).astype(np.int16)
        self.nii_int = nib.Nifti1Image(crop2, img2.affine, img2.header)
        self.nii_int.set_data_dtype(np.int16)
        self.nii_float_bytes = self.nii_float.to_bytes()
        self.nii_int_bytes = self.nii_int.to_bytes()
        self.png = sorted((s / "cxr" / "images").glob("*.png"))[:3]
        self.jpg = sorted((s / "dermoscopy").rglob("*.jpg"))[:2]

    @staticmethod
    def _bytes(ds: pydicom.Dataset) -> bytes:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
        return buf.getvalue()

    def _bad_string(self, ds: pydicom.Dataset, tag: str, value: str) -> bytes:
        """``ds`` serialised with ``tag`` holding ``value`` verbatim (pydicom refuses to set invalid DS/IS).

        The element is rewritten in the explicit-VR little-endian bytes: tag, VR, new length, new value.
        """
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        t = tag_for_keyword(tag)
        vr = dictionary_VR(t)
        setattr(ds, tag, "1")
        raw = self._bytes(ds)
        key = struct.pack("<HH", t >> 16, t & 0xFFFF) + vr.encode()
        pos = raw.find(key)
        assert pos > 0 and raw.count(key) == 1, (tag, value)
        (length,) = struct.unpack("<H", raw[pos + 6:pos + 8])
        padded = (value + " " * (len(value) % 2)).encode()
        return raw[:pos + 6] + struct.pack("<H", len(padded)) + padded + raw[pos + 8 + length:]

    def write_ds(self, category: str, name: str, ds: pydicom.Dataset, expect: str = "any") -> Path:
        return self.write(category, name, self._bytes(ds), expect)

    def write_series(self, category: str, name: str, datasets: list, expect: str = "any",
                     raw: list[bytes] | None = None) -> Path:
        folder = self.path(category, name)
        folder.mkdir(parents=True, exist_ok=True)
        blobs = raw if raw is not None else [self._bytes(ds) for ds in datasets]
        for n, b in enumerate(blobs):
            (folder / f"IM{n:04d}.dcm").write_bytes(b)
        self.add(category, folder, expect)
        return folder

    def small(self, k: int = 0) -> pydicom.Dataset:
        return pydicom.dcmread(io.BytesIO(self.small_bytes[k]), force=True)

    # ---- categories ------------------------------------------------------------------------------
    def truncated(self) -> None:
        cat = "truncated_dicom"
        srcs = [self.ct_j2k, self.ct_files[7], self.misc["emri_small.dcm"], self.misc["emri_small_RLE.dcm"],
                self.misc["emri_small_jpeg_ls_lossless.dcm"], self.misc["US1_UNCR.dcm"],
                self.misc["JPGLosslessP14SV1_1s_1f_8b.dcm"], self.misc["MR2_J2KR.dcm"]]
        for src in srcs:
            data = src.read_bytes()
            offsets = {0, 64, 128, 132, 200, len(data) - 1, len(data) - 2}
            while len(offsets) < 7 + 6 * self.scale:
                offsets.add(self.rng.randrange(1, len(data)))
            for off in sorted(offsets):
                # the last 8 bytes may be only the sequence delimiter or trailing padding: anything goes
                self.write(cat, f"{src.name}.cut{off}", data[:off], "error" if off < len(data) - 8 else "any")
        small = self.small_bytes[3]
        for off in sorted({self.rng.randrange(1, len(small)) for _ in range(6 * self.scale)}):
            self.write(cat, f"smallct.cut{off}", small[:off], "error")

    def deleted_tags(self) -> None:
        cat = "deleted_tag"
        tags = ["Rows", "Columns", "PixelData", "ImagePositionPatient", "ImageOrientationPatient", "BitsAllocated",
                "BitsStored", "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "PixelSpacing",
                "RescaleSlope", "RescaleIntercept", "SOPClassUID", "SeriesInstanceUID", "Modality", "HighBit"]
        bases = {"smallct": lambda: self.small(0), "ct_j2k": lambda: pydicom.dcmread(self.ct_j2k),
                 "emri": lambda: pydicom.dcmread(self.misc["emri_small.dcm"]),
                 "us_rgb": lambda: pydicom.dcmread(self.misc["US1_UNCR.dcm"])}
        for bname, make in bases.items():
            for tag in tags + ["NumberOfFrames", "TransferSyntaxUID", "SharedFunctionalGroupsSequence",
                               "PerFrameFunctionalGroupsSequence"]:
                ds = make()
                if tag == "TransferSyntaxUID":
                    del ds.file_meta.TransferSyntaxUID
                elif tag in ds:
                    delattr(ds, tag)
                else:
                    continue
                expect = "error" if tag in ("Rows", "Columns", "PixelData") else "any"
                self.write_ds(cat, f"{bname}.no_{tag}", ds, expect)
        # the same tag deleted in one slice of a series
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelData", "Rows", "PixelSpacing"):
            dss = [self.small(k) for k in range(len(self.small_series))]
            delattr(dss[5], tag)
            self.write_series(cat, f"series.slice5_no_{tag}", dss, "flag" if tag != "PixelSpacing" else "any")

    def wrong_values(self) -> None:
        cat = "wrong_value"
        variants = [("BitsAllocated", v) for v in (0, 1, 7, 8, 12, 24, 32, 64, 65535)]
        variants += [("BitsStored", v) for v in (0, 1, 17, 40)]
        variants += [("PixelRepresentation", v) for v in (1, 2, 255)]
        variants += [("SamplesPerPixel", v) for v in (0, 2, 3, 4, 65535)]
        variants += [("PhotometricInterpretation", v) for v in ("YBR_FULL_422", "PALETTE COLOR", "RGB", "", "XYZ")]
        variants += [("PlanarConfiguration", v) for v in (1, 7)]
        variants += [("RescaleSlope", v) for v in ("0", "nan", "inf", "-1e308", "abc")]
        variants += [("RescaleIntercept", v) for v in ("nan", "1e300", "-inf")]
        bases = {"smallct": lambda: self.small(0), "ct_j2k": lambda: pydicom.dcmread(self.ct_j2k),
                 "emri": lambda: pydicom.dcmread(self.misc["emri_small.dcm"])}
        for bname, make in bases.items():
            for tag, value in variants:
                if bname != "smallct" and tag in ("RescaleIntercept", "PlanarConfiguration"):
                    continue
                ds = make()
                name = f"{bname}.{tag}={value or 'empty'}".replace(" ", "_")
                if isinstance(value, str) and tag.startswith("Rescale"):
                    self.write(cat, name, self._bad_string(ds, tag, value), "any")
                    continue
                setattr(ds, tag, value)
                self.write_ds(cat, name, ds, "any")
        # NumberOfFrames lies on a multi-frame file
        for value in ("0", "-3", "11", "9", "abc"):
            ds = pydicom.dcmread(self.misc["emri_small.dcm"])
            self.write(cat, f"emri.NumberOfFrames={value}", self._bad_string(ds, "NumberOfFrames", value), "any")

    def spacing(self) -> None:
        cat = "spacing"
        n = len(self.small_series)

        def series(edit, name, expect="flag"):
            dss = [self.small(k) for k in range(n)]
            for k, ds in enumerate(dss):
                edit(k, ds)
            self.write_series(cat, name, dss, expect)

        def ipp_z(k, ds, f):
            p = [float(v) for v in ds.ImagePositionPatient]
            p[2] = f(k, p[2])
            ds.ImagePositionPatient = [f"{v:.4f}" for v in p]

        series(lambda k, ds: ipp_z(k, ds, lambda k, z: z + 0.37 * k * k), "quadratic_steps")
        series(lambda k, ds: ipp_z(k, ds, lambda k, z: z + (1.4 if k == 9 else 0)), "one_slice_shifted")
        jit = [self.nrng.normal(0, 0.8) for _ in range(n)]
        series(lambda k, ds: ipp_z(k, ds, lambda k, z: z + jit[k]), "jittered")
        series(lambda k, ds: setattr(ds, "PixelSpacing", ["1.0", "1.0"] if k % 2 else ds.PixelSpacing),
               "pixelspacing_alternates", "any")
        series(lambda k, ds: setattr(ds, "PixelSpacing", ["0", "0"]), "pixelspacing_zero")
        series(lambda k, ds: setattr(ds, "PixelSpacing", ["-1", "2"]), "pixelspacing_negative")
        series(lambda k, ds: setattr(ds, "PixelSpacing", ["nan", "nan"]), "pixelspacing_nan")
        series(lambda k, ds: setattr(ds, "SliceThickness", "0"), "slicethickness_zero", "any")
        series(lambda k, ds: setattr(ds, "ImagePositionPatient", ["0", "0", "0"]), "all_same_position")
        series(lambda k, ds: setattr(ds, "ImagePositionPatient", ["nan", "0", "0"]) if k == 3 else None,
               "one_position_nan")
        series(lambda k, ds: ipp_z(k, ds, lambda k, z: z * 1e6), "positions_1e6", "any")
        series(lambda k, ds: setattr(ds, "ImageOrientationPatient", ["0"] * 6), "orientation_zero")
        series(lambda k, ds: setattr(ds, "ImageOrientationPatient", ["1", "0", "0", "1", "0", "0"]),
               "orientation_parallel")

    def slices(self) -> None:
        cat = "slices"
        b = self.small_bytes
        self.write_series(cat, "duplicate_one", [], "flag", raw=b + [b[4]])
        self.write_series(cat, "duplicate_all", [], "flag", raw=b + b)
        self.write_series(cat, "missing_one", [], "flag", raw=b[:9] + b[10:])
        self.write_series(cat, "missing_three", [], "flag", raw=b[:5] + b[6:9] + b[11:14] + b[14:])
        self.write_series(cat, "missing_most", [], "flag", raw=[b[0], b[7], b[19]])
        self.write_series(cat, "two_slices", [], "any", raw=[b[0], b[1]])
        self.write_series(cat, "one_slice", [], "any", raw=[b[0]])
        self.write_series(cat, "first_last", [], "any", raw=[b[0], b[19]])
        # real J2K files: a missing slice in the real compressed series
        folder = self.path(cat, "real_j2k_missing_two")
        folder.mkdir(parents=True, exist_ok=True)
        for n, f in enumerate(self.ct_files[:8]):
            if n not in (3, 4):
                shutil.copyfile(f, folder / f.name)
        self.add(cat, folder, "flag")

    def mixed(self) -> None:
        cat = "mixed"
        n = len(self.small_series)
        folder = self.path(cat, "two_series")
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n):
            (folder / f"ct{k:03d}.dcm").write_bytes(self.small_bytes[k])
        shutil.copyfile(self.misc["emri_small.dcm"], folder / "mr.dcm")
        shutil.copyfile(self.misc["US1_UNCR.dcm"], folder / "us.dcm")
        self.add(cat, folder, "any")
        # same UID, some slices rotated 90° in plane or a different plane
        for name, iop, which in (("orient_sagittal_3", ["0", "1", "0", "0", "0", "-1"], (2, 7, 11)),
                                 ("orient_rot90_half", ["0", "1", "0", "-1", "0", "0"], range(0, n, 2)),
                                 ("orient_oblique_1", ["0.9", "0.1", "0", "-0.1", "0.9", "0"], (10,))):
            dss = [self.small(k) for k in range(n)]
            for k in which:
                dss[k].ImageOrientationPatient = iop
            self.write_series(cat, name, dss, "flag")
        dss = [self.small(k) for k in range(n)]
        big = dss[6]
        arr = np.zeros((32, 32), np.uint16)
        big.Rows, big.Columns, big.PixelData = 32, 32, arr.tobytes()
        self.write_series(cat, "one_slice_other_size", dss, "flag")
        dss = [self.small(k) for k in range(n)]
        for k in range(0, n, 3):
            dss[k].Modality = "MR"
            dss[k].BitsAllocated = 8
            dss[k].BitsStored = 8
            dss[k].HighBit = 7
            dss[k].PixelData = np.zeros((64, 64), np.uint8).tobytes()
        self.write_series(cat, "mixed_bit_depth", dss, "any")
        dss = [self.small(k) for k in range(n)]
        for k in range(n):
            dss[k].RescaleSlope = "1" if k % 2 else "0.5"
            dss[k].RescaleIntercept = str(-1024 + 7 * k)
        self.write_series(cat, "mixed_rescale", dss, "any")
        # a real J2K file among uncompressed ones of the same series
        dss = [self.small(k) for k in range(n)]
        folder = self.write_series(cat, "mixed_transfer_syntax", dss, "any")
        j2k = pydicom.dcmread(self.ct_files[19])
        j2k.SeriesInstanceUID = self.small_series[0].SeriesInstanceUID
        j2k.save_as(folder / "zz_j2k.dcm", enforce_file_format=False)

    def tilt(self) -> None:
        cat = "gantry_tilt"
        n = len(self.small_series)
        for deg in (3, 20, 60, 89):
            dss = [self.small(k) for k in range(n)]
            for k, ds in enumerate(dss):
                p = [float(v) for v in ds.ImagePositionPatient]
                step = 3.0
                p[1] += k * step * np.tan(np.radians(deg))
                ds.ImagePositionPatient = [f"{v:.4f}" for v in p]
                ds.GantryDetectorTilt = str(deg)
            self.write_series(cat, f"tilt{deg}", dss, "flag")

    def damaged_streams(self) -> None:
        cat = "damaged_stream"
        from viewer.io.dicom_header import read_header

        srcs = [self.ct_j2k, self.misc["emri_small_RLE.dcm"], self.misc["emri_small_jpeg_2k_lossless.dcm"],
                self.misc["emri_small_jpeg_ls_lossless.dcm"], self.misc["JPGLosslessP14SV1_1s_1f_8b.dcm"],
                self.misc["RG3_J2KR.dcm"]]
        for src in srcs:
            data = bytearray(src.read_bytes())
            off = read_header(src).pixel_offset
            assert off is not None
            n_var = 4 + 2 * self.scale
            for v in range(n_var):
                d = bytearray(data)
                kind = ("flip", "zero", "flip", "shuffle", "fraglen", "flip")[v % 6]
                start = self.rng.randrange(off + 8, len(d) - 64)
                if kind == "flip":
                    for _ in range(16):
                        d[self.rng.randrange(start, len(d))] ^= 1 << self.rng.randrange(8)
                elif kind == "zero":
                    d[start:start + 4096] = bytes(min(4096, len(d) - start))
                elif kind == "shuffle":
                    chunk = list(d[start:start + 512])
                    self.rng.shuffle(chunk)
                    d[start:start + len(chunk)] = bytes(chunk)
                elif kind == "fraglen":  # lie about the first item lengths (basic offset table / fragment)
                    pos = d.find(b"\xfe\xff\x00\xe0", off)
                    if pos >= 0:
                        d[pos + 4:pos + 8] = struct.pack("<I", self.rng.choice([0xFFFFFFF0, 3, 1 << 30]))
                self.write(cat, f"{src.name}.{kind}{v}", bytes(d), "any")
            # stream of garbage of the same length
            d = bytearray(data)
            d[off + 16:] = self.nrng.integers(0, 256, len(d) - off - 16, dtype=np.uint8).tobytes()
            self.write(cat, f"{src.name}.garbage", bytes(d), "error")

    def huge(self) -> None:
        cat = "huge_dims"
        combos = [dict(Rows=65535), dict(Columns=65535), dict(Rows=65535, Columns=65535),
                  dict(Rows=65535, Columns=65535, BitsAllocated=32), dict(NumberOfFrames=100000),
                  dict(NumberOfFrames=2**31 - 1), dict(Rows=65535, Columns=65535, NumberOfFrames=100000),
                  dict(SamplesPerPixel=3, Rows=65535, Columns=65535)]
        bases = {"smallct": lambda: self.small(0), "ct_j2k": lambda: pydicom.dcmread(self.ct_j2k),
                 "emri": lambda: pydicom.dcmread(self.misc["emri_small.dcm"]),
                 "emri_rle": lambda: pydicom.dcmread(self.misc["emri_small_RLE.dcm"])}
        for bname, make in bases.items():
            for c in combos:
                ds = make()
                for k, v in c.items():
                    setattr(ds, k, v)
                tag = "_".join(f"{k}={v}" for k, v in c.items())
                self.write_ds(cat, f"{bname}.{tag}", ds, "error")
        # a whole series that claims 65535² per slice
        dss = [self.small(k) for k in range(len(self.small_series))]
        for ds in dss:
            ds.Rows = ds.Columns = 65535
        self.write_series(cat, "series_65535sq", dss, "error")

    def nifti(self) -> None:
        cat = "nifti"
        import nibabel as nib

        base_f, base_i = self.nii_float_bytes, self.nii_int_bytes

        def hdr_edit(raw: bytes, **fields) -> bytes:
            h = nib.Nifti1Header.from_fileobj(io.BytesIO(raw[:348]), check=False)
            for k, v in fields.items():
                h[k] = v
            return h.binaryblock + raw[348:]

        def put(name: str, raw: bytes, expect: str, gz: bool = False) -> None:
            if gz:
                raw = gzip.compress(raw, mtime=0)
            self.write(cat, name + (".nii.gz" if gz else ".nii"), raw, expect)

        put("benign_float", base_f, "any")
        put("benign_int", base_i, "any", gz=True)
        lies = {
            "dim_bigger": dict(dim=[3, 96, 96, 32, 1, 1, 1, 1]),
            "dim_zero": dict(dim=[3, 0, 48, 16, 1, 1, 1, 1]),
            "dim_negative": dict(dim=[3, -48, 48, 16, 1, 1, 1, 1]),
            "ndim_zero": dict(dim=[0, 48, 48, 16, 1, 1, 1, 1]),
            "ndim_eight": dict(dim=[8, 48, 48, 16, 1, 1, 1, 1]),
            "ndim_nine": dict(dim=[9, 48, 48, 16, 1, 1, 1, 1]),
            "4d_lies": dict(dim=[4, 48, 48, 16, 50, 1, 1, 1]),
            "dtype_invalid": dict(datatype=1234),
            "dtype_complex": dict(datatype=32, bitpix=64),
            "dtype_float64": dict(datatype=64, bitpix=64),
            "bitpix_wrong": dict(bitpix=13),
            "voxoffset_past_eof": dict(vox_offset=10_000_000),
            "voxoffset_small": dict(vox_offset=0),
            "voxoffset_negative": dict(vox_offset=-500),
            "pixdim_zero": dict(pixdim=[1, 0, 0, 0, 1, 1, 1, 1], qform_code=0, sform_code=0),
            "pixdim_negative": dict(pixdim=[1, -1, -2, -3, 1, 1, 1, 1], qform_code=0, sform_code=0),
            "pixdim_nan": dict(pixdim=[1, np.nan, 1, 1, 1, 1, 1, 1], qform_code=0, sform_code=0),
            "pixdim_inf": dict(pixdim=[1, np.inf, 1, 1, 1, 1, 1, 1]),
            "qfac_weird": dict(pixdim=[7, 1, 1, 1, 1, 1, 1, 1], sform_code=0),
            "sform_nan": dict(srow_x=[np.nan] * 4, sform_code=1),
            "sform_zero": dict(srow_x=[0] * 4, srow_y=[0] * 4, srow_z=[0] * 4, sform_code=2),
            "sform_code_bogus": dict(sform_code=99, qform_code=-4),
            "quatern_nan": dict(quatern_b=np.nan, sform_code=0, qform_code=1),
            "scl_slope_nan": dict(scl_slope=np.nan),
            "scl_slope_zero": dict(scl_slope=0.0, scl_inter=5.0),
            "scl_slope_inf": dict(scl_slope=np.inf),
            "scl_huge": dict(scl_slope=1e38, scl_inter=1e38),
            "sizeof_hdr_wrong": dict(sizeof_hdr=540),
            "magic_ni1_no_img": dict(magic=b"ni1"),
            "100GB_claimed": dict(dim=[3, 4096, 4096, 6000, 1, 1, 1, 1]),
            "100GB_4d": dict(dim=[4, 1024, 1024, 1024, 100, 1, 1, 1], datatype=16, bitpix=32),
            "1e15_voxels": dict(dim=[3, 32767, 32767, 32767, 1, 1, 1, 1]),
        }
        for name, fields in lies.items():
            expect = "error" if name.startswith(("dim_bigger", "voxoffset_past", "100GB", "1e15", "dtype_invalid",
                                                 "dim_zero", "dim_negative")) else "any"
            if name.startswith(("pixdim_zero", "pixdim_negative", "pixdim_nan", "sform_zero", "sform_nan")):
                expect = "any"
            raw = hdr_edit(base_f, **fields)
            put(f"{name}", raw, expect)
            put(f"{name}_int", hdr_edit(base_i, **fields), expect, gz=True)
        # non-finite voxels
        data = np.asarray(self.nii_float.dataobj).copy()
        for name, fill in (("nan_some", "nan"), ("inf_some", "inf"), ("all_nan", "allnan"), ("neg_inf", "-inf")):
            d = data.copy()
            if fill == "allnan":
                d[...] = np.nan
            else:
                mask = self.nrng.random(d.shape) < 0.05
                d[mask] = float(fill)
            img = nib.Nifti1Image(d.astype(np.float32), self.nii_float.affine, self.nii_float.header)
            put(name, img.to_bytes(), "flag")
            put(name + "_gz", img.to_bytes(), "flag", gz=True)
        # data section shorter than the header says
        for frac in (0.0, 0.3, 0.999):
            cut = 352 + int((len(base_f) - 352) * frac)
            put(f"data_truncated_{frac}", base_f[:cut], "error")
        put("header_only_347", base_f[:347], "error")
        # corrupt gzip
        gz = gzip.compress(base_f, mtime=0)
        for n, frac in enumerate((0.1, 0.5, 0.9, 0.99)):
            self.write(cat, f"gz_truncated_{n}.nii.gz", gz[: int(len(gz) * frac)], "error")
        for n in range(3 + self.scale):
            d = bytearray(gz)
            for _ in range(8):
                d[self.rng.randrange(40, len(d))] ^= 0xFF
            self.write(cat, f"gz_flipped_{n}.nii.gz", bytes(d), "any")
        d = bytearray(gz)
        d[-8:-4] = b"\0\0\0\0"  # CRC wrong
        self.write(cat, "gz_bad_crc.nii.gz", bytes(d), "any")
        self.write(cat, "gz_random.nii.gz", gzip.compress(os.urandom(0) + self.nrng.bytes(5000), mtime=0), "error")
        self.write(cat, "gz_header_only.nii.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "error")
        self.write(cat, "zlib_not_gzip.nii.gz", zlib.compress(base_f), "error")
        # a NIfTI without a .nii name (content sniffing) and with a lying header
        self.write(cat, "unnamed_nifti", base_f, "any")
        self.write(cat, "unnamed_nifti_100GB", hdr_edit(base_f, dim=[3, 4096, 4096, 6000, 1, 1, 1, 1]), "error")
        self.write(cat, "unnamed_nifti_truncated", base_f[:5000], "error")
        # a real file truncated mid-stream (full size)
        real = (self.shared / NIFTI_SRC).read_bytes()
        self.write(cat, "real_gz_truncated.nii.gz", real[: len(real) // 3], "error")
        # a NIfTI-2 header with 100 GB claimed
        h2 = nib.Nifti2Header()
        h2.set_data_shape((4096, 4096, 6000))
        h2.set_data_dtype(np.uint8)
        self.write(cat, "nifti2_100GB.nii", h2.binaryblock + b"\0" * 4 + b"\x01" * 4096, "error")

    def raw_files(self) -> None:
        cat = "junk"
        for name in ("empty.dcm", "empty.nii", "empty.nii.gz", "empty.png", "empty.jpg", "empty"):
            self.write(cat, name, b"", "error")
        sizes = [1, 3, 7, 131, 132, 347, 348, 352, 1000, 65536, 70000, 300_000]
        for n, size in enumerate(sizes):
            ext = ("", ".dcm", ".nii", ".png", ".jpg", ".nii.gz")[n % 6]
            self.write(cat, f"random{n}_{size}{ext}", self.nrng.bytes(size), "error")
        # random bytes behind a valid DICOM preamble / raw dataset start / NIfTI magic
        for n in range(4 + 2 * self.scale):
            body = self.nrng.bytes(self.rng.choice([10, 500, 5000, 70000]))
            self.write(cat, f"dicm_random{n}.dcm", bytes(128) + b"DICM" + body, "error")
        for n in range(4):
            body = self.nrng.bytes(self.rng.choice([8, 400, 3000]))
            self.write(cat, f"rawdicom_random{n}", b"\x08\x00\x05\x00CS" + body, "error")
        for n in range(3):
            hdr = bytearray(self.nrng.bytes(348))
            hdr[0:4] = struct.pack("<i", 348)
            hdr[344:348] = b"n+1\x00"
            self.write(cat, f"nifti_magic_random{n}.nii", bytes(hdr) + self.nrng.bytes(4096), "error")
        # DICM preamble then the real dataset with every byte after 300 random
        d = bytearray(self.small_bytes[0])
        d[300:] = self.nrng.bytes(len(d) - 300)
        self.write(cat, "smallct_random_after_300", bytes(d), "error")
        # zip and pickle named like images
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(zipfile.ZipInfo("a.txt", date_time=(2020, 1, 1, 0, 0, 0)), "hello")
        self.write(cat, "archive.dcm", buf.getvalue(), "error")
        self.write(cat, "pickle.nii", b"\x80\x04\x95" + self.nrng.bytes(100), "error")

    def images(self) -> None:
        cat = "image"
        text = b"This is not an image, it is a text file.\n" * 20
        for name in ("text.png", "text.jpg", "text.jpeg", "text.tif", "text.bmp", "html.png"):
            self.write(cat, name, text if not name.startswith("html") else b"<html><body>404</body></html>", "error")
        self.write(cat, "png_magic_then_text.png", b"\x89PNG\r\n\x1a\n" + text, "error")
        self.write(cat, "jpeg_magic_then_text.jpg", b"\xff\xd8\xff\xe0" + text, "error")
        self.write(cat, "tiff_magic_then_text.tif", b"II*\x00" + text, "error")
        self.write(cat, "bmp_magic_then_text.bmp", b"BM" + text, "error")
        self.write(cat, "gif_magic_then_text.gif", b"GIF89a" + text, "error")
        for src in self.png + self.jpg:
            data = src.read_bytes()
            for off in sorted({self.rng.randrange(16, len(data)) for _ in range(3 + self.scale)}):
                self.write(cat, f"{src.stem}.cut{off}{src.suffix}", data[:off], "any")
            d = bytearray(data)
            for _ in range(20):
                d[self.rng.randrange(64, len(d))] ^= 0xFF
            self.write(cat, f"{src.stem}.flipped{src.suffix}", bytes(d), "any")
        # a PNG whose IHDR claims 100000×100000 (decompression bomb)
        data = bytearray(self.png[0].read_bytes())
        ihdr = data.find(b"IHDR")
        data[ihdr + 4:ihdr + 12] = struct.pack(">II", 100000, 100000)
        crc = zlib.crc32(bytes(data[ihdr:ihdr + 17])) & 0xFFFFFFFF
        data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
        self.write(cat, "png_ihdr_100000sq.png", bytes(data), "error")
        # benign: a real image as is, with the wrong extension
        self.write(cat, "real_png_named.dcm", self.png[1].read_bytes(), "any")
        self.write(cat, "real_jpg_named.png", self.jpg[0].read_bytes(), "any")

    def folders(self) -> None:
        cat = "folder"
        # symlink loops
        f = self.path(cat, "loop_self")
        f.mkdir(parents=True, exist_ok=True)
        (f / "me").symlink_to(".", target_is_directory=True)
        self.add(cat, f, "error")
        f = self.path(cat, "loop_with_series")
        f.mkdir(parents=True, exist_ok=True)
        for k in range(4):
            (f / f"IM{k}").write_bytes(self.small_bytes[k])
        (f / "sub").mkdir()
        (f / "sub" / "up").symlink_to("..", target_is_directory=True)
        (f / "sub" / "dangling").symlink_to("/nonexistent/file")
        self.add(cat, f, "any")
        f = self.path(cat, "loop_mutual")
        (f / "a").mkdir(parents=True, exist_ok=True)
        (f / "b").mkdir(parents=True, exist_ok=True)
        (f / "a" / "to_b").symlink_to("../b", target_is_directory=True)
        (f / "b" / "to_a").symlink_to("../a", target_is_directory=True)
        self.add(cat, f, "error")
        f = self.path(cat, "file_symlink_loop")
        f.mkdir(parents=True, exist_ok=True)
        (f / "x.dcm").symlink_to("y.dcm")
        (f / "y.dcm").symlink_to("x.dcm")
        self.add(cat, f, "error")
        p = self.path(cat, "direct_loop.dcm")
        p.symlink_to(p.name)
        self.add(cat, p, "error")
        self.add(cat, self._dir_with("only_dangling", []), "error")
        (self.out / cat / "only_dangling" / "gone.dcm").symlink_to("/nonexistent/gone.dcm")
        # a FIFO and a character device among the files of a series (open() on a FIFO blocks)
        f = self._dir_with("fifo_in_series", self.small_bytes[:4])
        os.mkfifo(f / "pipe.dcm")
        self.add(cat, f, "any")
        p = self.path(cat, "fifo_alone.dcm")
        os.mkfifo(p)
        self.add(cat, p, "error")
        f = self._dir_with("chardev_in_series", self.small_bytes[:4])
        (f / "zero.dcm").symlink_to("/dev/zero")
        self.add(cat, f, "any")
        # a folder named like a file, nested empty folders, hidden files only
        f = self.path(cat, "dir_named.dcm")
        f.mkdir(parents=True, exist_ok=True)
        self.add(cat, f, "error")
        f = self.path(cat, "deep_empty")
        (f / "a" / "b" / "c" / "d").mkdir(parents=True, exist_ok=True)
        self.add(cat, f, "error")
        f = self._dir_with("hidden_only", [])
        (f / ".IM0").write_bytes(self.small_bytes[0])
        self.add(cat, f, "error")
        f = self._dir_with("only_sidecars", [])
        (f / "notes.txt").write_text("hello")
        (f / "meta.json").write_text("{}")
        self.add(cat, f, "error")
        # a file that is one series in a folder with thousands of junk files (cheap: 400)
        f = self._dir_with("series_with_junk", self.small_bytes[:5])
        for n in range(400):
            (f / f"junk{n:04d}").write_bytes(b"x" * (n % 7))
        self.add(cat, f, "any")

    def _dir_with(self, name: str, blobs: list[bytes]) -> Path:
        f = self.path("folder", name)
        f.mkdir(parents=True, exist_ok=True)
        for k, b in enumerate(blobs):
            (f / f"IM{k:04d}").write_bytes(b)
        return f

    def unreadable(self) -> None:
        cat = "unreadable"
        p = self.path(cat, "DENY.dcm")
        p.write_bytes(self.small_bytes[0])
        self.items.append(Item("unreadable:file", str(p.relative_to(self.out)), cat, "error", deny=True))
        p = self.path(cat, "DENY.nii.gz")
        p.write_bytes(gzip.compress(self.nii_float_bytes, mtime=0))
        self.items.append(Item("unreadable:nifti", str(p.relative_to(self.out)), cat, "error", deny=True))
        p = self.path(cat, "DENY.png")
        p.write_bytes(self.png[0].read_bytes())
        self.items.append(Item("unreadable:png", str(p.relative_to(self.out)), cat, "error", deny=True))
        f = self.path(cat, "series_one_denied")
        f.mkdir(parents=True, exist_ok=True)
        for k in range(6):
            (f / (f"DENY{k}" if k == 2 else f"IM{k}")).write_bytes(self.small_bytes[k])
        self.items.append(Item("unreadable:series_one_denied", str(f.relative_to(self.out)), cat, "flag", deny=True))
        f = self.path(cat, "DENY_folder")
        f.mkdir(parents=True, exist_ok=True)
        (f / "IM0").write_bytes(self.small_bytes[0])
        self.items.append(Item("unreadable:folder", str(f.relative_to(self.out)), cat, "error", deny=True))
        f = self.path(cat, "study_with_denied_sub")
        (f / "ok").mkdir(parents=True, exist_ok=True)
        (f / "DENYsub").mkdir(parents=True, exist_ok=True)
        for k in range(3):
            (f / "ok" / f"IM{k}").write_bytes(self.small_bytes[k])
            (f / "DENYsub" / f"IM{k}").write_bytes(self.small_bytes[k + 5])
        self.items.append(Item("unreadable:denied_subfolder", str(f.relative_to(self.out)), cat, "any", deny=True))

    def benign(self) -> None:
        """Real inputs as they are: the reader must load these (a sanity check of the harness)."""
        cat = "benign"
        self.write_series(cat, "small_series", [], "load", raw=self.small_bytes)
        self.write(cat, "brain.nii", self.nii_float_bytes, "load")
        for name in ("emri_small.dcm", "emri_small_RLE.dcm", "US1_UNCR.dcm"):
            p = self.path(cat, name)
            shutil.copyfile(self.misc[name], p)
            self.add(cat, p, "load")


def build_corpus(shared: Path, out: Path, seed: int = 0, scale: int = 1) -> list[Item]:
    """Write the corpus under ``out`` and return its items (``scale`` > 1 adds more random variants)."""
    import warnings

    b = _Builder(Path(shared), Path(out), seed, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values we write on purpose
        b.sources()
        for step in (b.benign, b.truncated, b.deleted_tags, b.wrong_values, b.spacing, b.slices, b.mixed, b.tilt,
                     b.damaged_streams, b.huge, b.nifti, b.raw_files, b.images, b.folders, b.unreadable):
            step()
    return b.items
