"""Engine versus baseline on a held-out split, with bootstrap intervals, and the verdict the app shows.

Every engine's ``evaluate`` command scores the engine and a simple baseline fitted on the *training* split only
(see :mod:`engines.common.baseline`) on the same validation cases. :func:`compare` resamples the cases with
replacement (the same resample for both, so the difference is paired) and gives each a 95 % percentile
interval, plus the interval of the difference engine − baseline. The verdict:

* ``"better"``: the whole interval of the difference lies above 0 (higher is better for every metric here);
* ``"not better"``: the interval straddles 0;
* ``"below"``: the whole interval lies below 0.

Only ``"better"`` counts as validated; the app marks the scores of any other engine as *not validated*.
numpy only (evaluation runs on machines with torch + numpy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: ``metric(indices) -> value`` on the cases selected by ``indices`` (NaN when undefined for that sample).
CaseMetric = Callable[[np.ndarray], float]

VERDICT_TEXT = {
    "better": "beats the baseline on validation",
    "not better": "not better than the baseline on validation - demo only",
    "below": "below the baseline on validation - demo only",
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap 95 % percentile interval."""

    value: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        """``0.812 [0.750, 0.870]``."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class Comparison:
    """One metric of the engine and of the baseline on the same validation cases (higher is better).

    Attributes:
        metric: the metric's name as printed ("balanced accuracy", "Dice per volume", ...).
        baseline: what the baseline is, in a few words ("logistic regression on 32x32 pixels").
        n_cases: validation cases (the resampling unit: images, volumes or patients).
        engine, reference, difference: engine, baseline and engine − baseline with 95 % intervals.
        verdict: ``"better"``, ``"not better"`` or ``"below"`` (see the module docstring).
    """

    metric: str
    baseline: str
    n_cases: int
    engine: Interval
    reference: Interval
    difference: Interval
    verdict: str

    @property
    def validated(self) -> bool:
        """Whether the engine beats its baseline with the whole interval of the difference above 0."""
        return self.verdict == "better"

    def summary(self) -> str:
        """One line for the card and the UI."""
        return (f"{self.metric}: engine {self.engine.text()} vs {self.baseline} {self.reference.text()} "
                f"on {self.n_cases} validation cases - {VERDICT_TEXT[self.verdict]}")

    def to_dict(self) -> dict:
        """JSON-ready form (``card.json["validation"]``), with ``validated`` and ``summary`` spelled out."""
        d = asdict(self)
        d["validated"] = self.validated
        d["summary"] = self.summary()
        return d


def _percentile_interval(point: float, samples: np.ndarray) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(point, float("nan"), float("nan"))
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return Interval(float(point), float(lo), float(hi))


def bootstrap(metric: CaseMetric, n_cases: int, n_resamples: int = 1000, seed: int = 0) -> Interval:
    """``metric`` on all ``n_cases`` cases with a 95 % percentile interval over case resamples."""
    rng = np.random.default_rng(seed)
    all_idx = np.arange(n_cases)
    samples = np.array([metric(rng.integers(0, n_cases, n_cases)) for _ in range(n_resamples)], dtype=np.float64)
    return _percentile_interval(metric(all_idx), samples)


def compare(metric_name: str, baseline_name: str, engine: CaseMetric, baseline: CaseMetric, n_cases: int,
            n_resamples: int = 1000, seed: int = 0) -> Comparison:
    """Paired bootstrap of ``engine`` against ``baseline`` on the same ``n_cases`` validation cases.

    Args:
        metric_name: printed name of the metric (higher is better).
        baseline_name: what the baseline is.
        engine, baseline: ``metric(indices)`` for the engine's and the baseline's outputs on the cases
            ``indices`` (a resample may repeat cases).
        n_cases: number of validation cases.
        n_resamples: bootstrap resamples (1000 by default; fixed ``seed`` for a repeatable table).
    """
    if n_cases < 2:
        raise ValueError(f"need at least 2 validation cases to compare, got {n_cases}")
    rng = np.random.default_rng(seed)
    e_s, b_s = np.empty(n_resamples), np.empty(n_resamples)
    for r in range(n_resamples):
        idx = rng.integers(0, n_cases, n_cases)
        e_s[r], b_s[r] = engine(idx), baseline(idx)
    all_idx = np.arange(n_cases)
    e, b = engine(all_idx), baseline(all_idx)
    diff = _percentile_interval(e - b, e_s - b_s)
    if np.isfinite(diff.low) and diff.low > 0:
        verdict = "better"
    elif np.isfinite(diff.high) and diff.high < 0:
        verdict = "below"
    else:
        verdict = "not better"
    return Comparison(metric_name, baseline_name, n_cases, _percentile_interval(e, e_s),
                      _percentile_interval(b, b_s), diff, verdict)


def mean_of(values: Sequence[float] | np.ndarray) -> CaseMetric:
    """A :data:`CaseMetric` for per-case values (Dice per volume, pointing-game hits): their mean (NaNs ignored)."""
    v = np.asarray(values, dtype=np.float64)

    def metric(idx: np.ndarray) -> float:
        sel = v[idx]
        sel = sel[np.isfinite(sel)]
        return float(sel.mean()) if sel.size else float("nan")

    return metric


def comparison_table(rows: Sequence[Comparison]) -> str:
    """A plain-text table: metric, engine, baseline, difference (each with its 95 % interval), verdict."""
    head = f"{'metric':<28} {'engine [95% CI]':<24} {'baseline [95% CI]':<24} {'engine-baseline':<26} verdict"
    lines = [head, "-" * len(head)]
    for c in rows:
        lines.append(f"{c.metric:<28} {c.engine.text():<24} {c.reference.text():<24} "
                     f"{c.difference.text():<26} {c.verdict}")
        lines.append(f"  baseline: {c.baseline}; {c.n_cases} validation cases")
    return "\n".join(lines)


def verdict_of(card: dict) -> tuple[bool, str]:
    """``(validated, one-line summary)`` from a model card's ``validation`` entry.

    A card without one is not validated ("no baseline comparison in the model card").
    """
    v = card.get("validation") if isinstance(card, dict) else None
    if not isinstance(v, dict) or "verdict" not in v:
        return False, "no baseline comparison in the model card - demo only"
    return bool(v.get("verdict") == "better"), str(v.get("summary") or VERDICT_TEXT.get(v["verdict"], ""))
