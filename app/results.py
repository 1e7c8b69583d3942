"""Turn an :class:`~engines.base.EngineResult` into new viewer layers and a sorted score list.

Results always become *new* layers (DESIGN §4): names are "<engine title> · <overlay name>[ · <query>]",
made unique against the layers already in the document ("… (2)") and among themselves, so nothing a user
made is ever overwritten. Saliency and similarity maps become :class:`HeatmapLayer` presented as
:func:`~viewer.model.presentation.map_presentation` says (above the engine's threshold, film visible); masks
become :class:`LabelsLayer` with integer labels and their names.

The one exception is a typed query: its map goes to the engine's *query layer*, which each new query updates
(name, map, range) rather than stacking another layer; the user's opacity and colour map stay.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engines.base import Engine, EngineResult, Overlay
from viewer.model.document import Document
from viewer.model.layers import HeatmapLayer, LabelsLayer, Layer, unique_name
from viewer.model.presentation import map_presentation
from viewer.model.volume import Volume

SEP = " · "


def layer_name(engine: Engine, overlay: Overlay, query: str | None = None) -> str:
    """"<engine title> · <overlay name>[ · <query>]" (the query is left out when the name already has it)."""
    name = f"{engine.title}{SEP}{overlay.name}"
    q = (query or "").strip()
    if q and q not in overlay.name:
        name += f"{SEP}{q}"
    return name


def _as_labels(volume: Volume) -> Volume:
    """The mask with an integer dtype (bool → uint8, float → rounded int) on the same grid; no copy if int."""
    a = volume.array
    if a.dtype.kind in "iu":
        return volume
    arr = a.astype(np.uint8) if a.dtype == bool else np.rint(np.nan_to_num(a)).astype(np.int32)
    return Volume(arr, volume.affine, volume.modality, dict(volume.metadata), volume.spacing_known, volume.rgb)


def overlay_to_layer(engine: Engine, overlay: Overlay, name: str, provenance: str = "") -> Layer:
    """One overlay → a heatmap layer (saliency, similarity) or a labels layer (mask)."""
    if overlay.kind == "mask":
        return LabelsLayer(name=name, volume=_as_labels(overlay.volume), colormap=overlay.colormap or "labels",
                           provenance=provenance, label_names=dict(overlay.label_names),
                           outline=overlay.volume.metadata.get("display") == "outline", visible=overlay.visible)
    shown = map_presentation(overlay.colormap, overlay.value_range, overlay.threshold)
    return HeatmapLayer(name=name, volume=overlay.volume, colormap=shown.colormap, opacity=shown.opacity,
                        visible=overlay.visible, threshold=shown.threshold,
                        provenance=provenance, value_range=shown.value_range, units=overlay.units,
                        legend=overlay.legend or overlay.name)


def result_to_layers(engine: Engine, result: EngineResult, query: str | None = None,
                     existing: Iterable[str] | Iterable[Layer] = (), provenance: str | None = None) -> list[Layer]:
    """New layers for every overlay of ``result``.

    Args:
        engine: the engine that produced it (its title prefixes the names).
        result: the engine's result.
        query: the text query, appended to the names of its overlays.
        existing: names (or layers) already in the document; new names never collide with them.
        provenance: text for legends/exports; default "<engine id> (<title>)".

    Returns:
        Layers in the result's overlay order, not yet added to any document.
    """
    taken: set[str] = {x if isinstance(x, str) else x.name for x in existing}
    prov = provenance if provenance is not None else f"{engine.id} ({engine.title})"
    layers: list[Layer] = []
    for ov in result.overlays:
        name = unique_name(layer_name(engine, ov, query), taken)
        taken.add(name)
        layers.append(overlay_to_layer(engine, ov, name, prov))
    return layers


def add_result(document: Document, engine: Engine, result: EngineResult, query: str | None = None) -> list[Layer]:
    """Put ``result`` into ``document``: new layers, except that a query's maps update the engine's query layers.

    The n-th map of a query run replaces the map, range, threshold, legend and name of the n-th layer that
    earlier queries to the same engine made (its opacity, colour map and place in the stack stay, and it is
    shown again); maps without a query layer yet become new ones. Returns the layers added or updated.
    """
    prov = f"{engine.id} ({engine.title})"
    q = (query or "").strip()
    reusable = [la for la in document.layers if isinstance(la, HeatmapLayer) and la.query and la.provenance == prov]
    others = [la for la in document.layers if la not in reusable] if q else document.layers
    new = result_to_layers(engine, result, query, existing=others, provenance=prov)
    if not q:
        return [document.add_layer(layer) for layer in new]
    out: list[Layer] = []
    for layer in new:
        if isinstance(layer, HeatmapLayer):
            layer.query = q
            if reusable:
                out.append(_update_query_layer(document, reusable.pop(0), layer))
                continue
        out.append(document.add_layer(layer))
    return out


def _update_query_layer(document: Document, target: HeatmapLayer, answer: HeatmapLayer) -> HeatmapLayer:
    """``target`` now shows ``answer``'s map (the user's opacity and colour map kept)."""
    target.volume = answer.volume
    target.value_range = answer.value_range
    target.threshold = answer.threshold
    target.units, target.legend, target.query = answer.units, answer.legend, answer.query
    target.name = answer.name
    target.visible = True
    return target


def sorted_scores(result: EngineResult) -> list[tuple[str, float]]:
    """Class scores, highest first (ties by name), for a results panel's bar chart."""
    return sorted(result.scores.items(), key=lambda kv: (-kv[1], kv[0]))
