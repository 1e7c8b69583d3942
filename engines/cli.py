"""Headless engine commands: batch inference and safe weight conversion.

    lucent infer --list-engines [--json]
    lucent infer --engine ID --input PATH [PATH...] --output DIR [--query TEXT] [--device auto|cpu|cuda]
                 [--weights FILE] [--study]
    lucent convert-weights IN.pt OUT.safetensors [--strip-prefix PREFIX] [--fp16]

(also ``python -m engines.cli infer ...``). ``infer`` writes, per input, ``DIR/<name>/<overlay>.nii.gz``
(each overlay on its own grid, via :func:`viewer.io.write_nifti`), for 2D inputs also ``<overlay>.png`` (the
colour-mapped overlay blended on the image at the image's resolution), and ``DIR/<name>/scores.json``; and
``DIR/scores.csv`` with one row per input and class score. A progress bar goes to stderr. Errors print one
line; the exit status is 0 when all inputs succeeded, 1 when some failed, 2 for bad arguments.

Scale-out: under ``torchrun`` (``WORLD_SIZE``/``RANK`` set) each rank takes ``inputs[rank::world]``, uses
``cuda:LOCAL_RANK`` when on CUDA, writes ``scores.rank<r>.csv``; a gloo process group is created only for
the final barrier, after which rank 0 merges the per-rank CSVs into ``scores.csv``.

``--study`` reads all inputs as the scans of one study (multi-scan engines such as hlip). PNG overlays are
sampled onto the image by the viewer's own resampler (:class:`viewer.model.geometry.OverlaySampler`).
``python -m engines.<id>.infer`` is this command for one engine (:func:`engine_main`).

This module is the engines' file front-end: the one engine module that reads and writes image files, through
:mod:`viewer.io` (the import-linter contract names it as the exception). Readers (:mod:`viewer.io`) and Pillow
are imported lazily, so the module imports with torch + numpy only.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from engines.base import Cancelled, Engine, EngineError, EngineResult, Overlay
from viewer.model.volume import Volume

PROG = "lucent"


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


# ---- small helpers -----------------------------------------------------------------------------------
class TextProgress:
    """A one-line progress bar on ``stream`` (redrawn with ``\\r`` on a terminal; on a pipe, a line per
    10 % step or new input, so logs stay short)."""

    def __init__(self, total: int, stream: IO[str] | None = None, width: int = 28, prefix: str = "") -> None:
        self.total = max(1, total)
        self.stream = stream or sys.stderr
        self.width = width
        self.prefix = prefix
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_key: tuple[int, int] | None = None
        self._drawn = False

    def update(self, index: int, fraction: float, label: str, message: str = "") -> None:
        """Input ``index`` (0-based) is ``fraction`` done; ``label`` names it, ``message`` the step."""
        overall = min(1.0, (index + max(0.0, min(1.0, fraction))) / self.total)
        filled = int(round(overall * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{self.prefix}[{bar}] {overall * 100:5.1f}% {index + 1}/{self.total} {label}"
        if message:
            line += f": {message}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(100))
            self._drawn = True
        else:
            key = (index, int(fraction * 10))
            if key == self._last_key:
                return
            self._last_key = key
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def input_name(path: str | Path) -> str:
    """Output folder name of an input: its file name without image extensions (``a.nii.gz`` → ``a``)."""
    name = Path(str(path).rstrip("/\\")).name or "input"
    for ext in (".nii.gz", ".nii", ".nrrd", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return name


def slug(text: str) -> str:
    """File-name-safe lower-case form of ``text`` ("saliency · Effusion" → "saliency_effusion")."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return s or "overlay"


def _unique_names(paths: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        base = input_name(p)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}_{n + 1}")
    return out


def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    def _int(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name, default))
        except ValueError:
            return default

    world = max(1, _int("WORLD_SIZE", 1))
    rank = min(max(0, _int("RANK", 0)), world - 1)
    return rank, world, _int("LOCAL_RANK", rank)


# ---- PNG rendering (2D inputs) -----------------------------------------------------------------------
def _grey_uint8(volume: Volume) -> np.ndarray:
    """The 2D input as ``[H, W, 3]`` uint8 (grey: 1st–99th percentile stretch)."""
    a = volume.data3d[0]
    if volume.rgb:
        rgb = a[..., :3].astype(np.float32)
        if a.dtype != np.uint8:
            lo, hi = float(rgb.min()), float(rgb.max())
            rgb = (rgb - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(rgb)
        return np.clip(rgb, 0, 255).astype(np.uint8)
    f = a.astype(np.float32)
    finite = f[np.isfinite(f)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    g = np.clip((np.nan_to_num(f) - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(f), 0, 255)
    return np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)


def resample_to_grid(overlay: Volume, base: Volume, nearest: bool) -> np.ndarray:
    """``overlay`` sampled at every pixel of the 2D ``base`` image by the viewer's own resampler.

    :class:`viewer.model.geometry.OverlaySampler` on the base's native slice (rows and columns in array order):
    nearest for labels, bilinear for maps, voxel centres at integer indices on both grids — so the PNG shows
    the overlay where the viewer draws it. Returns ``[H, W]`` float32, NaN outside the overlay.
    """
    from viewer.model.geometry import OverlaySampler, SliceMapping

    mapping = SliceMapping.for_volume(base, "native")
    sampler = OverlaySampler(base, overlay, mapping, order=0 if nearest else 1, fill=float("nan"))
    return np.asarray(sampler.sample(0), dtype=np.float32)


#: TrueType fonts with the legends' glyphs (τ, en dash, ≥ …), tried in order; Pillow's built-in font lacks some.
LEGEND_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf")


@functools.cache
def legend_font(size: int = 12) -> Any:
    """A Pillow font for the PNG legend strip: DejaVu Sans (setup installs fonts-dejavu-core) of ``size`` px, else
    Pillow's default."""
    from PIL import ImageFont

    for name in LEGEND_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def render_png(base: Volume, overlay: Overlay, path: Path) -> Path:
    """Write ``overlay`` colour-mapped and blended over the 2D ``base`` image as PNG, with a legend strip.

    Coloured exactly as the viewer shows it at first (:func:`viewer.model.colormaps.heatmap_rgba` with
    :func:`viewer.model.presentation.map_presentation`): heatmaps transparent below the engine's threshold and
    at opacity 0.4 above it through a perceptual colour map; masks in label colours at opacity 0.5. A 28 px
    strip below the image shows the colour bar with its range and legend text (labels: the label names).
    """
    from PIL import Image, ImageDraw

    from viewer.model import colormaps
    from viewer.model.presentation import MASK_OPACITY, map_presentation

    is_mask = overlay.kind == "mask"
    values = resample_to_grid(overlay.volume, base, nearest=is_mask)
    shown = map_presentation(overlay.colormap, overlay.value_range, overlay.threshold)
    lo, hi = shown.value_range
    name = shown.colormap
    if is_mask:
        rgba = colormaps.labels_rgba(values, MASK_OPACITY)
    else:
        rgba = colormaps.heatmap_rgba(values, name, shown.value_range, shown.threshold, shown.opacity)
    out = colormaps.blend_over(_grey_uint8(base), rgba)
    h, w = out.shape[:2]
    canvas = Image.new("RGB", (w, h + 28), (0, 0, 0))
    canvas.paste(Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = legend_font()
    if is_mask:
        x = 4
        for value, label in sorted(overlay.label_names.items()) or [(1, overlay.name)]:
            draw.rectangle((x, h + 8, x + 10, h + 18), fill=colormaps.label_colour(int(value)))
            draw.text((x + 14, h + 6), str(label), fill=(255, 255, 255), font=font)
            x += 24 + int(draw.textlength(str(label), font=font))
    else:
        bar_w = max(16, min(160, w // 3))
        strip = colormaps.lut(name)[np.linspace(0, 255, bar_w).astype(np.uint8)][None, :, :3].repeat(10, 0)
        canvas.paste(Image.fromarray(np.ascontiguousarray(strip), "RGB"), (4, h + 9))
        text = f"{lo:g}-{hi:g} {overlay.units}  {overlay.legend or overlay.name}".strip()
        draw.text((bar_w + 10, h + 6), text, fill=(255, 255, 255), font=font)
    canvas.save(path)
    return path


# ---- infer -------------------------------------------------------------------------------------------
def _infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} infer", description="Run an AI engine on image files "
                                "(research demo, not for clinical use).")
    p.add_argument("--list-engines", action="store_true", help="list the engines and their weights, then exit")
    p.add_argument("--json", action="store_true", help="with --list-engines: print JSON")
    p.add_argument("--engine", metavar="ID", help="engine id (see --list-engines)")
    p.add_argument("--input", nargs="+", metavar="PATH", default=[], help="DICOM folder/file, NIfTI, PNG/JPEG")
    p.add_argument("--output", metavar="DIR", help="folder for overlays and scores (created)")
    p.add_argument("--query", metavar="TEXT", help="text finding for engines that take one")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--weights", metavar="FILE", help="your own .safetensors weights instead of the shipped ones")
    p.add_argument("--study", action="store_true", help="read all inputs as the scans of ONE study (engines "
                   "that read several scans together, e.g. hlip); output in DIR/<first input>/")
    return p


def describe_engine(engine: Engine) -> dict[str, Any]:
    """id, title, inputs, query, outputs and weights (file + SHA-256) of ``engine``, for listings."""
    from engines.weights import ModelCard

    dims = "/".join(f"{d}D" for d in engine.dims)
    mods = "any" if "*" in engine.modalities else "/".join(engine.modalities)
    info: dict[str, Any] = {"id": engine.id, "title": engine.title, "inputs": f"{dims} {mods}",
                            "query": bool(engine.takes_query), "outputs": list(engine.outputs),
                            "weights_file": None, "sha256": None}
    try:
        if ModelCard.exists(engine.id):
            card = ModelCard.load(engine.id)
            info["weights_file"] = card.weights_file
            info["sha256"] = card.sha256
    except EngineError as exc:
        info["weights_error"] = str(exc)
    return info


def list_engines(as_json: bool = False, stream: IO[str] | None = None) -> int:
    """Print every engine (and engines that failed to load) to ``stream``; returns 0."""
    from engines import registry

    out = stream or sys.stdout
    rows = [describe_engine(e) for e in registry.all_engines()]
    broken = registry.failures()
    if as_json:
        json.dump({"engines": rows, "failed": {k: v.splitlines()[0] for k, v in broken.items()}}, out, indent=1)
        out.write("\n")
        return 0
    header = ("id", "title", "inputs", "query", "outputs", "weights")
    table = [header]
    for r in rows:
        w = f"{r['weights_file']} sha256:{r['sha256'][:12]}" if r["sha256"] else r.get("weights_error", "none shipped")
        table.append((r["id"], r["title"], r["inputs"], "yes" if r["query"] else "no", ",".join(r["outputs"]), w))
    widths = [max(len(str(row[c])) for row in table) for c in range(len(header))]
    for row in table:
        out.write("  ".join(str(v).ljust(widths[c]) for c, v in enumerate(row)).rstrip() + "\n")
    if not rows:
        out.write("(no engines installed)\n")
    for k, v in broken.items():
        out.write(f"{k}: failed to load: {v.splitlines()[0]}\n")
    return 0


def _engine_for(engine_id: str, weights: str | None) -> Engine:
    from engines import registry

    try:
        engine = registry.get(engine_id)
    except EngineError as exc:
        raise UsageError(str(exc)) from exc
    if weights:
        if not Path(weights).is_file():
            raise UsageError(f"weights file not found: {weights}")
        try:
            engine = type(engine)(weights=Path(weights))  # type: ignore[call-arg]
        except TypeError as exc:
            raise UsageError(f"engine {engine_id} does not take a weights file") from exc
    return engine


def write_outputs(volume: Volume, result: EngineResult, out_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write overlays (NIfTI, PNG for 2D inputs) and ``scores.json`` into ``out_dir``; returns the JSON."""
    from viewer.io import write_nifti

    out_dir.mkdir(parents=True, exist_ok=True)
    overlays = []
    used: set[str] = set()
    for ov in result.overlays:
        base = slug(ov.name)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        nii = write_nifti(ov.volume, out_dir / f"{name}.nii.gz")
        entry: dict[str, Any] = {"name": ov.name, "kind": ov.kind, "nifti": nii.name,
                                 "shape": list(ov.volume.array.shape), "value_range": list(ov.value_range),
                                 "colormap": ov.colormap, "legend": ov.legend, "units": ov.units}
        if ov.label_names:
            entry["label_names"] = {str(k): v for k, v in ov.label_names.items()}
        if volume.is_2d:
            entry["png"] = render_png(volume, ov, out_dir / f"{name}.png").name
        overlays.append(entry)
    doc = {**meta, "scores": dict(result.scores), "overlays": overlays, "notes": list(result.notes),
           "intended_use": "research demo, not for clinical use"}
    tmp = out_dir / ".scores.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, out_dir / "scores.json")
    return doc


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = ["input", "engine", "query", "name", "score"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def infer(args: argparse.Namespace, stream: IO[str] | None = None) -> int:
    """Run ``args.engine`` on every input of this rank; see the module docstring for files and status."""
    from engines.device import configure_threads, pick_device, run_with_oom_fallback

    err = stream or sys.stderr
    if not args.engine or not args.input or not args.output:
        raise UsageError("infer needs --engine ID, --input PATH... and --output DIR (or --list-engines)")
    engine = _engine_for(args.engine, args.weights)
    if args.query and not engine.takes_query:
        raise UsageError(f"engine {engine.id} does not take a text query")
    rank, world, local_rank = _dist_env()
    names = _unique_names(args.input)
    if args.study:  # one job: every input is a scan of the same study
        jobs = [(list(args.input), names[0])]
    else:
        jobs = [([p], n) for p, n in zip(args.input, names, strict=True)]
    mine = jobs[rank::world]
    out_root = Path(args.output)
    out_root.mkdir(parents=True, exist_ok=True)
    configure_threads(gui=False)
    prefix = f"[rank {rank}/{world}] " if world > 1 else ""
    device = pick_device(args.device, lambda m: err.write(f"{prefix}{m}\n"))
    if device.type == "cuda" and world > 1 and device.index is None:
        import torch

        device = torch.device(f"cuda:{local_rank % max(1, torch.cuda.device_count())}")
        torch.cuda.set_device(device)

    own_group = _dist_init() if world > 1 else False
    bar = TextProgress(len(mine), err, prefix=prefix)
    rows: list[dict[str, Any]] = []
    failures = 0
    for index, (paths, name) in enumerate(mine):
        path = paths[0]
        label = Path(path).name + (f" (+{len(paths) - 1} scans)" if len(paths) > 1 else "")
        t0 = time.perf_counter()
        try:
            from viewer.io import load_volume

            bar.update(index, 0.0, label, "loading")
            volumes = [load_volume(p) for p in paths]
            volume = volumes[0]

            def attempt(dev: Any, index: int = index, label: str = label,
                        volumes: list[Volume] = volumes) -> EngineResult:
                def report(f: float, m: str = "") -> None:
                    bar.update(index, f, label, m)

                if len(volumes) > 1:
                    return engine.run_study(volumes, args.query, device=str(dev), progress=report)
                return engine.run(volumes[0], args.query, device=str(dev), progress=report)

            notes: list[str] = []
            result = run_with_oom_fallback(attempt, device, notes.append)
            result.notes.extend(notes)
            meta = {"input": str(path), **({"scans": list(map(str, paths))} if len(paths) > 1 else {}), "engine": engine.id, "engine_title": engine.title,
                    "query": args.query or "", "device": str(device), "rank": rank,
                    "elapsed_s": round(time.perf_counter() - t0, 3)}
            write_outputs(volume, result, out_root / name, meta)
            rows += [{"input": str(path), "engine": engine.id, "query": args.query or "", "name": k,
                      "score": f"{v:.6g}"} for k, v in result.scores.items()]
            bar.update(index, 1.0, label, f"done in {time.perf_counter() - t0:.1f} s")
        except (EngineError, Cancelled, OSError, ValueError) as exc:
            failures += 1
            bar.close()
            err.write(f"{PROG} infer: {path}: {_one_line(exc)}\n")
        except Exception as exc:  # LoadError and anything unexpected: one line, keep going
            failures += 1
            bar.close()
            kind = "" if type(exc).__name__ == "LoadError" else f"{type(exc).__name__}: "
            text = _one_line(exc)
            where = "" if text.startswith(str(path)) else f"{path}: "
            err.write(f"{PROG} infer: {where}{kind}{text}\n")
    bar.close()
    csv_name = "scores.csv" if world == 1 else f"scores.rank{rank}.csv"
    _write_csv(out_root / csv_name, rows)
    if world > 1:
        _barrier_and_merge(out_root, rank, world, own_group)
    done = len(mine) - failures
    err.write(f"{prefix}{done}/{len(mine)} input(s) done, output in {out_root}\n")
    return 0 if failures == 0 else 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _dist_init() -> bool:
    """Join torchrun's gloo group (used only for the final barrier); True when this call created it.

    Done before the work so that a broken rendezvous fails early; the timeout is long because ranks
    wait at the barrier for the slowest one.
    """
    import datetime

    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized() and os.environ.get("MASTER_ADDR"):
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
        return True
    return False


def _barrier_and_merge(out_root: Path, rank: int, world: int, own: bool) -> None:
    """Wait for every rank (gloo barrier), then rank 0 merges ``scores.rank*.csv`` into ``scores.csv``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    if rank == 0:
        rows: list[dict[str, Any]] = []
        for r in range(world):
            p = out_root / f"scores.rank{r}.csv"
            if p.is_file():
                with open(p, newline="", encoding="utf-8") as fh:
                    rows += list(csv.DictReader(fh))
        _write_csv(out_root / "scores.csv", rows)
    if own:
        dist.destroy_process_group()


# ---- convert-weights ---------------------------------------------------------------------------------
def _convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} convert-weights", description="Convert a PyTorch checkpoint "
                                "to .safetensors, loading it with torch.load(weights_only=True).")
    p.add_argument("src", metavar="IN.pt")
    p.add_argument("dst", metavar="OUT.safetensors")
    p.add_argument("--strip-prefix", metavar="PREFIX", help="remove PREFIX from the keys (default: 'module.' "
                   "when every key has it)")
    p.add_argument("--fp16", action="store_true", help="store floating tensors as float16")
    return p


def convert_weights(args: argparse.Namespace, stream: IO[str] | None = None) -> int:
    """``lucent convert-weights``: convert and print the output's SHA-256."""
    from engines.convert import convert_checkpoint

    out = stream or sys.stdout
    rep = convert_checkpoint(args.src, args.dst, strip_prefix=args.strip_prefix, fp16=args.fp16)
    out.write(f"wrote {rep.path}: {rep.tensors} tensors, {rep.parameters:,} values"
              f"{' (unwrapped ' + '/'.join(rep.unwrapped) + ')' if rep.unwrapped else ''}\n")
    if rep.skipped:
        out.write(f"skipped {len(rep.skipped)} non-tensor entries: {', '.join(rep.skipped[:5])}"
                  f"{' …' if len(rep.skipped) > 5 else ''}\n")
    if rep.vocab is not None:
        out.write(f"copied the tokenizer vocabulary to {rep.vocab}\n")
    out.write(f"sha256 {rep.sha256}\n")
    return 0


# ---- python -m engines.<id>.infer -------------------------------------------------------------------
def engine_main(engine_id: str, argv: Sequence[str] | None = None, study: bool = False) -> int:
    """``python -m engines.<id>.infer INPUT... [--out DIR] [--query TEXT]... [--weights W] [--device D]``.

    The same as ``lucent infer --engine <id> --input INPUT... --output DIR`` (files and exit status as there);
    ``study`` reads all inputs as the scans of one study; with several ``--query`` each runs into ``DIR/<query>/``.
    """
    p = argparse.ArgumentParser(prog=f"python -m engines.{engine_id}.infer",
                                description=f"Run {engine_id} on files (= {PROG} infer --engine {engine_id}).")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", default=f"{engine_id}_out", metavar="DIR")
    p.add_argument("--query", action="append", default=[], metavar="TEXT")
    p.add_argument("--weights", metavar="FILE")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    a = p.parse_args(None if argv is None else list(argv))
    common = ["--engine", engine_id, "--input", *a.inputs, "--device", a.device,
              *(["--weights", a.weights] if a.weights else []), *(["--study"] if study else [])]
    if len(a.query) <= 1:
        return main(["infer", *common, "--output", a.out, *(["--query", a.query[0]] if a.query else [])])
    status = [main(["infer", *common, "--output", str(Path(a.out) / slug(q)), "--query", q]) for q in a.query]
    return max(status)


def main_if_run(module_name: str, engine_id: str, study: bool = False) -> None:
    """When ``module_name`` is ``"__main__"`` (``python -m engines.<id>.infer``), run :func:`engine_main` and exit."""
    if module_name == "__main__":
        sys.exit(engine_main(engine_id, study=study))


# ---- entry point -------------------------------------------------------------------------------------
USAGE = (f"usage: {PROG} infer --list-engines | {PROG} infer --engine ID --input PATH... --output DIR "
         f"[--query TEXT] [--device auto|cpu|cuda]\n       {PROG} convert-weights IN.pt OUT.safetensors")


def main(argv: Sequence[str] | None = None) -> int:
    """``lucent infer ...`` / ``lucent convert-weights ...``; ``argv`` starts with the sub-command.

    Returns the exit status: 0 success, 1 an input or the conversion failed, 2 bad arguments,
    130 interrupted. Errors are printed as one line on stderr (``LUCENT_DEBUG=1`` raises instead).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("infer", "convert-weights"):
        sys.stderr.write(USAGE + "\n")
        return 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "convert-weights":
            return convert_weights(_convert_parser().parse_args(rest))
        args = _infer_parser().parse_args(rest)
        if args.list_engines:
            return list_engines(args.json)
        return infer(args)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2), message already printed
        return int(exc.code) if isinstance(exc.code, int) else 2
    except UsageError as exc:
        sys.stderr.write(f"{PROG} {cmd}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG} {cmd}: interrupted\n")
        return 130
    except (EngineError, Cancelled, OSError) as exc:
        if os.environ.get("LUCENT_DEBUG"):
            raise
        sys.stderr.write(f"{PROG} {cmd}: {_one_line(exc)}\n")
        return 1
    except Exception as exc:
        if os.environ.get("LUCENT_DEBUG"):
            raise
        sys.stderr.write(f"{PROG} {cmd}: {type(exc).__name__}: {_one_line(exc)}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
