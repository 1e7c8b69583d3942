"""Turn ``../shared/data/cxr`` into arrays + sentence embeddings that training and evaluation read with numpy.

Usage::

    python -m engines.radzero.prepare --data ../shared/data/cxr --out data_prepared/radzero --size 224

Uses the **same held-out patients** as multires_cxr: the split is read from ``engines/multires_cxr/split.json``
(by patient, near-duplicates joined, seed 20180321, 30 % held out), and the image/mask/box helpers are imported
from :mod:`engines.common.cxr` and :mod:`engines.common.image`. Writes ``<out>/<size>/
{train,test}.npz`` with

* ``images`` uint8 ``[N, S, S]`` (percentile-normalised grey, squashed to S × S), ``lung_mask``/``has_mask``
  (the lungVAE mask, aerated lung only: the localisation target and the Dice-threshold choice score against it),
  ``lung_field`` (the same mask as FILLED lung fields, :func:`engines.common.lung_fields.fill_fields` applied at
  S × S after resizing: each lung replaced by its convex hull, so consolidated lung is in; the region of the
  lung-attention training term), ``lung_region`` (``"filled"``), ``box_mask``/``has_box`` (union of the two lung
  boxes; the term's fallback), ``filenames``, ``patientids``, ``findings``;
* ``labels`` float32 ``[N, 14]`` (1/0/-1, :func:`engines.common.cxr_labels.map_labels`) and ``covid``
  int8 ``[N]`` (1 = the finding column names COVID-19);
* sentences (:func:`engines.radzero.text.minimal_sentences`): ``sent_text`` ``[M]`` (unique over the side),
  ``sent_emb`` float32 ``[M, 384]`` (all-MiniLM-L6-v2, L2-normalised), ``img_sent_ptr`` ``[N + 1]`` and
  ``img_sent_idx`` (image n's sentences are ``img_sent_idx[ptr[n]:ptr[n+1]]``);
* zero-shot prompts: ``class_names`` ``[C]``, ``prompt_pos_text``/``prompt_neg_text`` and their embeddings
  ``prompt_pos_emb``/``prompt_neg_emb`` ``[C, 384]``.

Only this step needs Pillow and the sentence encoder; training/evaluation need torch + numpy only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engines.common.cxr import SPLIT_FILE, box_mask, load_rows, read_boxes, read_png
from engines.common.cxr_labels import LABELS, map_labels
from engines.common.image import normalise, resize_mask, resize_square
from engines.common.lung_fields import fill_fields
from engines.common.prepare import prepare_parser
from engines.common.text import encode
from engines.radzero.text import label_phrase, minimal_sentences, negation, prompt

#: what ``lung_field`` holds (recorded in the npz and in the train summary).
LUNG_REGION = "filled"

#: zero-shot classes: the 14 NIH findings (rule-mapped labels) and COVID-19 pneumonia (the finding column).
CLASS_NAMES: tuple[str, ...] = (*LABELS, "COVID-19")


def class_phrase(name: str) -> str:
    """Class name → prompt phrase."""
    return "covid-19 pneumonia" if name == "COVID-19" else label_phrase(name)


def prepare(data: Path, out: Path, size: int = 224, split_file: Path = SPLIT_FILE, limit: int | None = None,
            sides: tuple[str, ...] = ("train", "test")) -> dict[str, object]:
    """Write ``out/<size>/<side>.npz`` (see module docstring); returns the split used.

    Args:
        limit: keep only the first ``limit`` images of each side (quick tests).
    """
    if not split_file.exists():
        raise FileNotFoundError(f"{split_file} missing: run `python -m engines.multires_cxr.prepare` once")
    split = json.loads(split_file.read_text())
    rows = load_rows(data)
    index = {r["filename"]: i for i, r in enumerate(rows)}
    boxes = read_boxes(data)
    (out / str(size)).mkdir(parents=True, exist_ok=True)
    pos_text = [prompt(class_phrase(c)) for c in CLASS_NAMES]
    neg_text = [negation(class_phrase(c)) for c in CLASS_NAMES]
    prompt_emb = encode(pos_text + neg_text)
    for side in sides:
        names = [n for n in split[side] if n in index][:limit]
        imgs, masks, fields, has_m, bmasks, has_b, labs, covid, sents = [], [], [], [], [], [], [], [], []
        for name in names:
            r = rows[index[name]]
            im = normalise(read_png(data / "images" / name))
            imgs.append(np.round(resize_square(im, size) * 255).clip(0, 255).astype(np.uint8))
            mpath = data / "lung_masks" / f"{Path(name).stem}_mask.png"
            has_m.append(mpath.exists())
            masks.append(resize_mask(read_png(mpath) > 127, size) if mpath.exists()
                         else np.zeros((size, size), np.uint8))
            fields.append(fill_fields(masks[-1].astype(bool)).astype(np.uint8))  # filled at S × S
            b = boxes.get(Path(name).stem)
            has_b.append(bool(b))
            bmasks.append(box_mask(b, size, size) if b else np.zeros((size, size), np.uint8))
            labs.append(map_labels(r["finding"], r["clinical_notes"]))
            covid.append(int("covid" in r["finding"].lower()))
            sents.append(minimal_sentences(r["finding"], r["clinical_notes"]))
        uniq = sorted({s for ss in sents for s in ss})
        pos_of = {s: i for i, s in enumerate(uniq)}
        ptr = np.cumsum([0] + [len(ss) for ss in sents])
        idx = np.array([pos_of[s] for ss in sents for s in ss], dtype=np.int64)
        np.savez_compressed(
            out / str(size) / f"{side}.npz", images=np.stack(imgs), lung_mask=np.stack(masks),
            has_mask=np.array(has_m), lung_field=np.stack(fields), lung_region=np.array(LUNG_REGION),
            box_mask=np.stack(bmasks), has_box=np.array(has_b),
            filenames=np.array(names), patientids=np.array([rows[index[n]]["patientid"] for n in names]),
            findings=np.array([rows[index[n]]["finding"] for n in names]), labels=np.stack(labs),
            label_names=np.array(LABELS), covid=np.array(covid, np.int8),
            sent_text=np.array(uniq), sent_emb=encode(uniq), img_sent_ptr=ptr, img_sent_idx=idx,
            class_names=np.array(CLASS_NAMES), prompt_pos_text=np.array(pos_text),
            prompt_neg_text=np.array(neg_text), prompt_pos_emb=prompt_emb[: len(CLASS_NAMES)],
            prompt_neg_emb=prompt_emb[len(CLASS_NAMES):])
    return split


def main(argv: list[str] | None = None) -> None:
    ap = prepare_parser("radzero", __doc__.splitlines()[0], "cxr")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    prepare(args.data, args.out, args.size)
    for side in ("train", "test"):
        d = np.load(args.out / str(args.size) / f"{side}.npz")
        n = len(d["filenames"])
        print(f"{side}: {n} images, {len(set(d['patientids']))} patient ids, {len(d['sent_text'])} unique "
              f"sentences, {len(d['img_sent_idx']) / n:.1f} per image, {int(d['has_mask'].sum())} lung masks, "
              f"{int(d['has_box'].sum())} box sets; lung field {d['lung_field'].sum() / max(d['lung_mask'].sum(), 1):.2f}"
              f"× the lungVAE area ({d['lung_region']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
