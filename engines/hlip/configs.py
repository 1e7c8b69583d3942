"""Named HLIP configs: the authors' released/paper variants (``../shared/reference/hlip_spec.md`` §2) and the demo.

The paper-size configs reproduce the authors' key names and shapes exactly (tested against
``hlip_state_dict_keys.json`` with ``strict=True``). h2 (scan+study) and h3 (slice+scan+study) variants share
keys and shapes: the schedule comes from the config name, never from the file.
"""

from __future__ import annotations

from engines.hlip.model import HLIPConfig

_B12 = dict(width=768, depth=12, heads=12)
_L24 = dict(width=1024, depth=24, heads=16)
_BERT = dict(text="bert", text_width=768)  # BiomedBERT, context 256
_CXR_BERT = dict(text="bert", text_width=768, text_context=512)  # CXR-BERT (chest CT), context 512
_H2 = dict(slice_blocks=(), scan_blocks=(0, 1, 3, 4, 6, 7, 9, 10), study_blocks=(2, 5, 8, 11))
_H3 = dict(slice_blocks=(0, 3, 6, 9), scan_blocks=(1, 4, 7, 10), study_blocks=(2, 5, 8, 11))
_SINGLE = dict(slice_blocks=(0, 1, 3, 4, 6, 7, 9, 10), scan_blocks=(2, 5, 8, 11), study_blocks=())
_DUAL = dict(num_prefix=2, head="dinotxt", embed_dim=768, logit_bias=True, max_num_scans=0)


def _large(slice_scan_study: bool) -> dict:
    study = (5, 11, 17, 23)
    if slice_scan_study:
        sl = tuple(i for i in range(24) if i % 6 < 4)
        sc = (4, 10, 16, 22)
    else:
        sl = ()
        sc = tuple(i for i in range(24) if i not in study)
    return dict(slice_blocks=sl, scan_blocks=sc, study_blocks=study)


PAPER_CONFIGS: dict[str, dict] = {
    "clip_vit_base_singlescan_h2_token2744": dict(
        **_B12, **_CXR_BERT, **_SINGLE, input_size=(112, 336, 336), patch_size=(8, 24, 24), max_num_scans=0,
        head="cls", embed_dim=512),
    "clip_vit_base_multiscan_h2_token588": dict(
        **_B12, **_BERT, **_H2, input_size=(48, 224, 224), patch_size=(16, 16, 16), max_num_scans=40,
        head="cls", embed_dim=512),
    "clip_vit_base_multiscan_h2_token1176": dict(
        **_B12, **_BERT, **_H2, input_size=(48, 224, 224), patch_size=(8, 16, 16), max_num_scans=40,
        head="cls", embed_dim=512),
    "clip_vit_base_multiscan_h3_token1176": dict(
        **_B12, **_BERT, **_H3, input_size=(48, 224, 224), patch_size=(8, 16, 16), max_num_scans=40,
        head="cls", embed_dim=512),
    "ablate_seqposemb_clip_vit_base_multiscan_h2_dinotxt1568": dict(
        **_B12, **_BERT, **_H2, input_size=(48, 224, 224), patch_size=(6, 16, 16), max_num_scans=0,
        head="dinotxt", embed_dim=768),
    "clip_vit_base_scan_study_dualdinotxt1568": dict(
        **_B12, **_BERT, **_H2, **_DUAL, input_size=(48, 224, 224), patch_size=(6, 16, 16)),
    "clip_vit_base_slice_scan_study_dualdinotxt1568": dict(
        **_B12, **_BERT, **_H3, **_DUAL, input_size=(48, 224, 224), patch_size=(6, 16, 16)),
    "clip_vit_large_scan_study_dualdinotxt1568": dict(
        **_L24, **_BERT, **_large(False), **_DUAL, input_size=(48, 224, 224), patch_size=(6, 16, 16)),
    "clip_vit_large_slice_scan_study_dualdinotxt1568": dict(
        **_L24, **_BERT, **_large(True), **_DUAL, input_size=(48, 224, 224), patch_size=(6, 16, 16)),
    "clip_vit_base_slice_scan_dualdinotxt2744": dict(
        **_B12, **_CXR_BERT, **_SINGLE, **_DUAL, input_size=(112, 336, 336), patch_size=(8, 24, 24)),
}
# the paper's brain-MRI model with the three-level schedule (slice 0,3,6,9 / scan 1,4,7,10 / study 2,5,8,11)
PAPER_DEFAULT = "clip_vit_base_multiscan_h3_token1176"

# demo: 48×96×96 per scan, patch 8×16×16 → 6×6×6 = 216 tokens/scan; 6 blocks, the h3 schedule scaled down
DEMO = dict(width=192, depth=6, heads=3, input_size=(48, 96, 96), patch_size=(8, 16, 16), max_num_scans=40,
            num_prefix=1, slice_blocks=(0, 3), scan_blocks=(1, 4), study_blocks=(2, 5), head="dinotxt",
            embed_dim=256, text="minilm", text_width=384)
# tiny: for tests only
TINY = dict(width=32, depth=3, heads=2, input_size=(16, 32, 32), patch_size=(8, 16, 16), max_num_scans=40,
            num_prefix=1, slice_blocks=(0,), scan_blocks=(1,), study_blocks=(2,), head="dinotxt", embed_dim=16,
            text="minilm", text_width=384)


def get_config(name: str) -> HLIPConfig:
    """A named config ("demo", "tiny" or one of :data:`PAPER_CONFIGS`)."""
    if name == "demo":
        return HLIPConfig(name="demo", **DEMO)
    if name == "tiny":
        return HLIPConfig(name="tiny", **TINY)
    if name in PAPER_CONFIGS:
        return HLIPConfig(name=name, **PAPER_CONFIGS[name])
    raise ValueError(f"unknown HLIP config {name!r}; known: demo, tiny, {', '.join(PAPER_CONFIGS)}")
