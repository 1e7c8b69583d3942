"""Synthetic-image checks: a contact sheet (real vs synthetic per class) and image-quality figures.

Features are our own autoencoder's latent means (``[z, S/4, S/4]``) average-pooled to ``z × 4 × 4`` = 64-d
(for the demo config) — there is no ImageNet Inception network offline, so this is **not** the standard FID.

* Nearest-real-neighbour (NN) distance: for each synthetic image, the L2 distance (in that feature space and in
  pixel space, 8-bit RMS) to the closest real *training* image. Reference: the same distance for every real
  training image to its closest *other* real training image (leave-one-out). Synthetic NN distances far below
  the real leave-one-out ones would mean the generator copies training images.
* FID-AE: Fréchet distance between Gaussian fits of the 64-d features of synthetic class c and real training
  class c; reference: the FID between two random halves of the real training class c (sample-size floor).
"""

from __future__ import annotations

import numpy as np

from engines.dermae.data import CLASSES, SHORT


def ae_features(ae, images: np.ndarray, pool: int = 4) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``uint8 [N,S,S,3]`` → float64 ``[N, z·pool²]`` pooled latent means of the autoencoder."""
    import torch
    import torch.nn.functional as F

    from engines.dermae.data import to_unit

    out = []
    with torch.no_grad():
        for i in range(0, len(images), 64):
            z = ae.encode(to_unit(images[i:i + 64]))[0]
            out.append(F.adaptive_avg_pool2d(z, pool).flatten(1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.maximum(d, 0))


def nn_distances(query: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """L2 distance of each row of ``query`` to its nearest row of ``ref`` (``exclude_self``: query is ref)."""
    d = _pairwise(query, ref)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return d.min(1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)`` of Gaussian fits of rows of ``a``, ``b``."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def quality_report(ae, real: np.ndarray, real_y: np.ndarray, syn: np.ndarray,  # type: ignore[no-untyped-def]
                   syn_y: np.ndarray, seed: int = 0) -> dict[str, object]:
    """NN distances and FID-AE per synthetic class (see the module docstring)."""
    fr, fs = ae_features(ae, real), ae_features(ae, syn)
    px_r = real.reshape(len(real), -1).astype(np.float64)
    px_s = syn.reshape(len(syn), -1).astype(np.float64)
    npx = px_r.shape[1]
    rng = np.random.default_rng(seed)
    out: dict[str, object] = {
        "feature_space": "our autoencoder's latent means, average-pooled to 4x4 (64-d); not Inception/FID",
        "real_loo_nn_feature_median": float(np.median(nn_distances(fr, fr, True))),
        "real_loo_nn_pixel_rms_median": float(np.median(nn_distances(px_r, px_r, True)) / np.sqrt(npx)),
        "per_class": {},
    }
    for c in np.unique(syn_y):
        s, r = fs[syn_y == c], fr[real_y == c]
        d_feat = nn_distances(s, fr)
        d_px = nn_distances(px_s[syn_y == c], px_r) / np.sqrt(npx)
        perm = rng.permutation(len(r))
        half = len(r) // 2
        out["per_class"][CLASSES[int(c)]] = {  # type: ignore[index]
            "n_synthetic": int(len(s)), "n_real": int(len(r)),
            "nn_feature_median": float(np.median(d_feat)), "nn_feature_min": float(d_feat.min()),
            "nn_pixel_rms_median": float(np.median(d_px)), "nn_pixel_rms_min": float(d_px.min()),
            "fid_ae_synthetic_vs_real": frechet_distance(s, r) if len(s) > 2 and len(r) > 2 else None,
            "fid_ae_real_half_vs_half": frechet_distance(r[perm[:half]], r[perm[half:]]) if half > 2 else None,
            "fid_ae_real_vs_other_real_classes": frechet_distance(fr[real_y != c], r) if len(r) > 2 else None,
        }
    return out


def contact_sheet(real: np.ndarray, real_y: np.ndarray, syn: np.ndarray, syn_y: np.ndarray, nevus_syn: np.ndarray,
                  path, n: int = 8, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    """PNG: one row per class, ``n`` real training images (left) | ``n`` synthetic (right), labelled."""
    from PIL import Image, ImageDraw

    s = real.shape[1]
    pad, left, top = 4, 90, 22
    w = left + 2 * n * (s + pad) + 3 * pad
    h = top + len(CLASSES) * (s + pad) + pad
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((left, 4), "real (training split)", fill=(0, 0, 0))
    draw.text((left + n * (s + pad) + 3 * pad, 4), "synthetic (latent DDPM, DDIM 50 steps)", fill=(0, 0, 0))
    rng = np.random.default_rng(seed)
    for row, name in enumerate(CLASSES):
        y0 = top + row * (s + pad)
        draw.text((4, y0 + s // 2 - 6), SHORT[row], fill=(0, 0, 0))
        ri = np.nonzero(real_y == row)[0]
        pick = rng.choice(ri, size=min(n, len(ri)), replace=False) if len(ri) else []
        for k, i in enumerate(pick):
            sheet.paste(Image.fromarray(real[i]), (left + k * (s + pad), y0))
        simgs = nevus_syn if name == "nevus" else syn[syn_y == row]
        for k in range(min(n, len(simgs))):
            sheet.paste(Image.fromarray(simgs[k]), (left + n * (s + pad) + 3 * pad + k * (s + pad), y0))
    sheet.save(path)
