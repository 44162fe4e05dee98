"""Which unit tracks which feature: chosen on one half of the text, confirmed on the other.

Every unit's signal is scored against every feature on one signed scale in
[-1, 1]: 2·AUROC−1 for yes/no features (the rank-biserial correlation; 0 is
chance, ±1 separates perfectly) and Spearman's rank correlation for counts.
Both use ranks only, so a unit that tracks a feature through any monotone
curve scores as well as a linear one.

With hundreds of units some score well by chance, so the best units are picked
on the first half of the text and their score is reported on the second half
(the held-out score); only units whose held-out score reaches the threshold
with the same sign are listed.  A half with fewer than ``MIN_SIDE`` positives
or negatives (for counts: non-zero or zero values) says too little, and the
feature is skipped with the reason.

Beside the single units, a sparse linear probe (lasso over all units, fitted on
the first half, scored the same way on the second) is the yardstick: a unit
close to the probe means the feature lives in that unit, a probe far above
every unit means it is spread over many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rnnlm.inspection.features import Feature
from rnnlm.inspection.defaults import DEFAULT_THRESHOLD

MIN_SIDE = 20
PROBE_SCREEN = 256  # the probe sees the units that score best on the fitting half (sure-independence screening)
PROBE_ALPHAS = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # fractions of the smallest penalty that zeroes every weight


@dataclass(frozen=True)
class Column:
    """One scored signal: ``layer`` counts from 0, ``signal`` is ``h`` or ``c``."""

    layer: int
    signal: str
    unit: int


@dataclass
class UnitScore:
    column: Column
    select_score: float
    heldout_score: float
    listed: bool


@dataclass
class FeatureResult:
    name: str
    kind: str
    description: str
    skipped: str | None = None
    units: list[UnitScore] = field(default_factory=list)
    probe: dict | None = None

    @property
    def metric(self) -> str:
        return "2auc-1" if self.kind == "binary" else "spearman"


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks (1-based, ties averaged) of each column of ``x`` (N, D), vectorised."""
    x = np.asarray(x)
    x = x.reshape(len(x), -1)
    n, d = x.shape
    order = np.argsort(x, axis=0)  # ties are averaged below, so the sort need not be stable
    s = np.take_along_axis(x, order, axis=0)
    idx = np.broadcast_to(np.arange(n)[:, None], (n, d))
    starts_group = np.ones((n, d), dtype=bool)
    starts_group[1:] = s[1:] != s[:-1]
    ends_group = np.ones((n, d), dtype=bool)
    ends_group[:-1] = starts_group[1:]
    first = np.maximum.accumulate(np.where(starts_group, idx, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends_group, idx, n - 1)[::-1], axis=0)[::-1]
    ranks = np.empty((n, d))
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return ranks


def _pearson_columns(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Correlation of each column of ``a`` (N, D) with ``y`` (N,); 0 for a constant column."""
    a = a - a.mean(axis=0)
    y = y - y.mean()
    denom = np.sqrt((a * a).sum(axis=0) * (y * y).sum())
    return np.divide(a.T @ y, denom, out=np.zeros(a.shape[1]), where=denom > 0)


def scores_from_ranks(ranks: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Signed scores of every column whose ranks are ``ranks`` (N, D) against the feature ``y`` (N,)."""
    if kind == "binary":
        positive = y > 0.5
        p, q = int(positive.sum()), int((~positive).sum())
        auc = (ranks[positive].sum(axis=0) - p * (p + 1) / 2) / (p * q)
        return 2.0 * auc - 1.0
    return _pearson_columns(ranks, average_ranks(y)[:, 0])


def score(values: np.ndarray, y: np.ndarray, kind: str) -> float:
    """The score of one series ``values`` (N,) against ``y``: what the held-out numbers mean."""
    return float(scores_from_ranks(average_ranks(values), y, kind)[0])


def _too_few(y: np.ndarray, kind: str, half: str) -> str | None:
    positive = int((y > 0.5).sum()) if kind == "binary" else int((y != 0).sum())
    negative = len(y) - positive
    words = ("positive", "negative") if kind == "binary" else ("non-zero", "zero")
    for count, word in zip((positive, negative), words):
        if count < MIN_SIDE:
            return f"the {half} half has {count} {word} character{'s' if count != 1 else ''} (needs {MIN_SIDE})"
    return None


def _standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.divide(x - mean, std, out=np.zeros_like(x), where=std > 0)


def _lasso(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Weights (D, len(alphas)) minimising ½·mean((y − Xw)²) + α‖w‖₁ for each α, by FISTA on the Gram matrix."""
    xt = torch.from_numpy(x)
    gram = (xt.T @ xt) / len(x)  # (D, D)
    b = (xt.T @ torch.from_numpy(y)) / len(x)  # (D,)
    lipschitz = float(torch.linalg.eigvalsh(gram)[-1]) + 1e-12
    lam = torch.from_numpy(alphas)[None, :] / lipschitz  # (1, G)
    w = torch.zeros(x.shape[1], len(alphas), dtype=xt.dtype)
    z, t = w.clone(), 1.0
    for _ in range(iterations):
        grad = gram @ z - b[:, None]
        w_next = z - grad / lipschitz
        w_next = torch.sign(w_next) * torch.clamp(w_next.abs() - lam, min=0.0)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        z = w_next + ((t - 1) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w.numpy()


def sparse_probe(fit_x: np.ndarray, fit_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, kind: str) -> dict:
    """Lasso on standardised units: the penalty chosen on the last third of the fitting half, the score on the test half."""
    y_mean, y_std = fit_y.mean(), fit_y.std() or 1.0

    def fit(x, y):
        mean, std = x.mean(axis=0), x.std(axis=0)
        xs = _standardise(x, mean, std)
        ys = (y - y_mean) / y_std
        alpha_max = np.abs(xs.T @ ys).max() / len(xs)
        return mean, std, _lasso(xs, ys, alpha_max * np.asarray(PROBE_ALPHAS))

    cut = len(fit_x) * 2 // 3
    mean, std, weights = fit(fit_x[:cut], fit_y[:cut])
    inner = _standardise(fit_x[cut:], mean, std) @ weights  # (n, G)
    inner_scores = [score(inner[:, g], fit_y[cut:], kind) if np.ptp(inner[:, g]) > 0 else -1.0
                    for g in range(len(PROBE_ALPHAS))]
    best = int(np.argmax(inner_scores))
    mean, std, weights = fit(fit_x, fit_y)
    w = weights[:, best]
    prediction = _standardise(test_x, mean, std) @ w
    held = score(prediction, test_y, kind) if np.ptp(prediction) > 0 else 0.0
    return {"heldout_score": held, "units_used": int((w != 0).sum()), "alpha": PROBE_ALPHAS[best]}


def find_units(features: list[Feature], matrix: np.ndarray, columns: list[Column], *, per_feature: int = 3,
               threshold: float = DEFAULT_THRESHOLD, probe: bool = True) -> list[FeatureResult]:
    """Score every column of ``matrix`` (N characters, D signals) against every feature.

    The first half (N // 2 characters) chooses the ``per_feature`` best columns
    by absolute score; the second half confirms them.  Results keep the
    features' order; each feature's units are ranked by their choosing score.
    """
    half = len(matrix) // 2
    parts = (slice(0, half), slice(half, len(matrix)))
    ranks = [average_ranks(matrix[p]) for p in parts]
    results = []
    for feature in features:
        result = FeatureResult(feature.name, feature.kind, feature.description)
        results.append(result)
        halves = [feature.values[p] for p in parts]
        result.skipped = _too_few(halves[0], feature.kind, "first") or _too_few(halves[1], feature.kind, "second")
        if result.skipped:
            continue
        chosen = scores_from_ranks(ranks[0], halves[0], feature.kind)
        held = scores_from_ranks(ranks[1], halves[1], feature.kind)
        for j in np.argsort(-np.abs(chosen), kind="stable")[:per_feature]:
            confirmed = abs(held[j]) >= threshold and np.sign(held[j]) == np.sign(chosen[j])
            result.units.append(UnitScore(columns[j], float(chosen[j]), float(held[j]), bool(confirmed)))
        if probe:
            keep = np.argsort(-np.abs(chosen), kind="stable")[:PROBE_SCREEN]
            result.probe = sparse_probe(matrix[parts[0]][:, keep].astype(np.float64), halves[0],
                                        matrix[parts[1]][:, keep].astype(np.float64), halves[1], feature.kind)
    return results


__all__ = ["Column", "UnitScore", "FeatureResult", "find_units", "average_ranks", "score", "scores_from_ranks",
           "sparse_probe", "MIN_SIDE", "DEFAULT_THRESHOLD"]
