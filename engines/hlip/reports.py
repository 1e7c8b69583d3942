"""Rule-based report generator and prompts (no radiologist reports exist in ``../shared/data``).

The paper trains on real radiology reports. Here the training texts are **written by rules from the labels and
masks the data has** — say so wherever the numbers are shown:

* Brain MRI (BRATS 2013 cases with ``OTMultiClass`` masks): a study is FLAIR + T1c of one patient, either the
  whole volume or a slab of 48 contiguous axial slices. From the whole-tumour mask inside the study
  (label > 0) the generator writes "no significant abnormalities" (no tumour voxel) or "glioma" with the side
  (centroid left/right of the brain-mask centroid, patient frame), the size (whole-tumour volume in cm³:
  small < 10, medium < 50, large), and components present (enhancing = label 4, necrosis = label 1, oedema =
  label 2). BraTS-GLI-00001 (no mask) gets "glioma." only.
* Head CT (PNG slices, ``hemorrhage`` label only): "intracranial hemorrhage" vs "no significant
  abnormalities" / "no intracranial hemorrhage".

Every text starts "This MRI study shows: " / "This CT study shows: " (the paper's training form).
"""

from __future__ import annotations

from dataclasses import dataclass

MRI_PREFIX = "This MRI study shows: "
CT_PREFIX = "This CT study shows: "
TEMPLATES = {"MR": "This MRI study shows: {c}.", "CT": "This CT study shows: {c}.", "OT": "This study shows: {c}."}

# the paper's Pub-Brain-5 classes (v1 prompts)
REFERENCE_CLASS = "No significant abnormalities"  # the "normal" prompt the contrast heatmap subtracts
PUB_BRAIN_5 = ("No significant abnormalities", "Acute stroke", "Glioma", "Meningioma", "Metastasis")
# what the app shows for an open study without a query (tumour, haemorrhage, stroke, normal)
DEFAULT_CLASSES = ("glioma", "intracranial hemorrhage", "acute stroke", "no significant abnormalities")
# 2-way protocol: ("X", "no X")
BINARY_TASKS = {"CT": ("intracranial hemorrhage", "no intracranial hemorrhage"),
                "MR": ("glioma", "no glioma")}


def prompt(c: str, modality: str = "MR") -> str:
    """The class prompt for ``modality`` ("MR" → "This MRI study shows: {c}.", "CT" → CT form, else generic)."""
    return TEMPLATES.get(modality, TEMPLATES["OT"]).format(c=c.strip().rstrip("."))


@dataclass
class TumourStats:
    """Whole-tumour facts of one study (from the BRATS mask)."""

    voxels: int
    volume_cc: float
    side: str  # "left", "right" or "midline"
    enhancing: bool
    necrosis: bool
    oedema: bool

    def flipped(self) -> TumourStats:
        """The same tumour after a left–right flip of the image."""
        side = {"left": "right", "right": "left"}.get(self.side, self.side)
        return TumourStats(self.voxels, self.volume_cc, side, self.enhancing, self.necrosis, self.oedema)


def size_word(cc: float) -> str:
    return "small" if cc < 10 else ("medium-sized" if cc < 50 else "large")


def mri_reports(t: TumourStats | None, tumour_known: bool = True) -> list[str]:
    """Report variants for one MRI study (``t`` None = no tumour voxel; ``tumour_known`` False = no mask, glioma)."""
    if not tumour_known:
        return [MRI_PREFIX + "glioma.", MRI_PREFIX + "brain tumour."]
    if t is None or t.voxels == 0:
        return [MRI_PREFIX + "no significant abnormalities.", MRI_PREFIX + "no mass lesion.",
                MRI_PREFIX + "normal brain, no tumour."]
    side = {"left": "left hemisphere", "right": "right hemisphere"}.get(t.side, "midline")
    parts = []
    if t.enhancing:
        parts.append("enhancing component")
    if t.necrosis:
        parts.append("necrosis")
    if t.oedema:
        parts.append("surrounding oedema")
    comp = (" with " + ", ".join(parts)) if parts else ""
    return [
        MRI_PREFIX + f"{size_word(t.volume_cc)} glioma in the {side}{comp}.",
        MRI_PREFIX + f"glioma in the {side}.",
        MRI_PREFIX + f"{size_word(t.volume_cc)} brain tumour, {side}.",
        MRI_PREFIX + "glioma.",
    ]


def ct_reports(hemorrhage: bool) -> list[str]:
    """Report variants for one head-CT study."""
    if hemorrhage:
        return [CT_PREFIX + "intracranial hemorrhage.", CT_PREFIX + "acute intracranial hemorrhage.",
                CT_PREFIX + "hemorrhage."]
    return [CT_PREFIX + "no significant abnormalities.", CT_PREFIX + "no intracranial hemorrhage.",
            CT_PREFIX + "normal head CT."]
