"""Workspace files: a study's layers, annotations, window/level and crosshair, saved and restored.

A workspace is a zip file (``.lucent``) holding ``workspace.json`` and one NIfTI per overlay layer
(``layers/<n>.nii.gz``, each on its own grid with its own affine). The base image is *referenced* by the
path it was opened from (and its DICOM SeriesInstanceUID), not copied: studies are large and the user's
files stay where they are. Writes are atomic (temporary file + ``os.replace``).

``workspace.json`` (version 1)::

    {"version": 1, "source": "/path/to/study", "series_uid": "1.2…" | null,
     "saved_at": "2026-11-23T10:00:00", "crosshair": [x, y, z],            # patient LPS mm
     "base": {"name": …, "window": [width, centre] | null, "colormap": …, "opacity": …, "visible": …},
     "layers": [{"kind": "heatmap" | "labels" | "image", "name": …, "file": "layers/1.nii.gz",
                 "visible": …, "opacity": …, "colormap": …, …kind-specific fields…}],
     "annotations": [{"kind": …, "plane": …, "points": [[x, y, z], …], "text": …}],
     "view": {…free-form view state: layout, camera…}}
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from ..model.annotations import Annotation
from ..model.document import Document
from ..model.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer
from ..model.window_level import WindowLevel
from .atomic import atomic_path
from .dispatch import load_volume
from .errors import LoadError
from .nifti_write import write_nifti

VERSION = 1
_COMMON = ("name", "visible", "opacity", "colormap", "provenance")
_EXTRA = {"heatmap": ("value_range", "threshold", "units", "legend", "query"), "labels": ("outline", "label_names"),
          "image": ()}
_CLASSES: dict[str, type[Layer]] = {"heatmap": HeatmapLayer, "labels": LabelsLayer, "image": ImageLayer}


def _layer_state(layer: Layer) -> dict[str, Any]:
    state = {f: getattr(layer, f) for f in _COMMON + _EXTRA[layer.kind]}
    if "label_names" in state:
        state["label_names"] = {str(k): v for k, v in state["label_names"].items()}
    if isinstance(layer, ImageLayer):
        state["window"] = [layer.window.width, layer.window.center] if layer.window else None
    state["kind"] = layer.kind
    return state


def save_workspace(doc: Document, path: str | Path, view_state: dict | None = None) -> Path:
    """Write ``doc``'s layers, annotations and display state to the zip ``path``; returns the path."""
    return write_snapshot(snapshot(doc, view_state), path)


def snapshot(doc: Document, view_state: dict | None = None) -> tuple[dict[str, Any], list]:
    """What :func:`write_snapshot` writes: ``(workspace.json state, [(zip name, Volume), …])``.

    Cheap (no image data copied: volumes are never changed in place); take it on the thread that owns ``doc``,
    then write it anywhere, e.g. on a background thread.
    """
    base = doc.base_layer
    state: dict[str, Any] = {
        "version": VERSION, "source": doc.source, "series_uid": doc.base.metadata.get("series_uid"),
        "saved_at": datetime.now().isoformat(timespec="seconds"), "crosshair": doc.crosshair.tolist(),
        "base": _layer_state(base), "layers": [], "annotations": [a.to_dict() for a in doc.annotations],
        "view": view_state or {},
    }
    volumes = []
    for n, layer in enumerate(la for la in doc.layers if la is not base):
        name = f"layers/{n + 1}.nii.gz"
        volumes.append((name, layer.volume))
        state["layers"].append({**_layer_state(layer), "file": name, "spacing_known": layer.volume.spacing_known})
    return state, volumes


def write_snapshot(snap: tuple[dict[str, Any], list], path: str | Path) -> Path:
    """Write a :func:`snapshot` to the zip ``path`` atomically; returns the path."""
    path = Path(path)
    state, volumes = snap
    with (atomic_path(path) as tmp, tempfile.TemporaryDirectory() as work,
          zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf):
        for name, volume in volumes:
            local = Path(work) / Path(name).name
            write_nifti(volume, local, flip_rows=False)
            zf.write(local, name)
        zf.writestr("workspace.json", json.dumps(state, indent=2))
    return path


def read_workspace_state(path: str | Path) -> dict[str, Any]:
    """The parsed ``workspace.json`` of a workspace file (no image data read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            state = json.loads(zf.read("workspace.json"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(f"{path}: not a Lucent workspace ({type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise LoadError(f"{path}: unsupported workspace version {state.get('version')!r}")
    return state


def _apply_layer_state(layer: Layer, state: dict[str, Any]) -> None:
    for f in _COMMON + _EXTRA[layer.kind]:
        if f in state:
            value = state[f]
            if f == "value_range":
                value = tuple(value)
            elif f == "label_names":
                value = {int(k): v for k, v in value.items()}
            setattr(layer, f, value)
    if isinstance(layer, ImageLayer) and state.get("window"):
        layer.window = WindowLevel(*state["window"])


def load_workspace(path: str | Path, source_override: str | Path | None = None) -> tuple[Document, dict]:
    """Rebuild the Document saved in ``path``; returns it and the saved view state.

    The base image is read again from the saved source (or ``source_override`` when it moved). Raises
    LoadError with a plain message when the workspace or its source cannot be read.
    """
    state = read_workspace_state(path)
    source = str(source_override or state["source"])
    if not Path(source).exists():
        raise LoadError(f"the study this workspace belongs to is missing: {source}")
    base = load_volume(source, series_uid=state.get("series_uid"))
    doc = Document(base, name=state["base"].get("name", "image"), source=source)
    _apply_layer_state(doc.base_layer, state["base"])
    with tempfile.TemporaryDirectory() as work, zipfile.ZipFile(path) as zf:
        for entry in state["layers"]:
            local = Path(work) / Path(entry["file"]).name
            local.write_bytes(zf.read(entry["file"]))
            volume = load_volume(local)
            volume.spacing_known = bool(entry.get("spacing_known", True))
            volume.metadata.pop("source", None)
            cls = _CLASSES[entry["kind"]]
            layer = cls(name=entry["name"], volume=volume)
            _apply_layer_state(layer, entry)
            doc.layers.append(layer)
    for a in state["annotations"]:
        doc.annotations.append(Annotation.from_dict(a))
    doc.crosshair = state["crosshair"]
    return doc, state.get("view", {})
