"""Why a transaction scored high: its top reasons, by per-feature occlusion against a baseline.

Method. For a transaction x with score f(x) and a baseline vector b (the per-feature median of the
transactions the model learnt from: a typical transaction), the contribution of feature j is

    c_j = f(x) - f(x with x_j replaced by b_j)

that is, how much the score would drop if that one feature were typical. c_j > 0 means feature j pushed the
score up. The top reasons are the (at most) three features with the largest positive contributions, largest
first; a feature equal to its baseline contributes exactly 0 and is never a reason.

Why occlusion: it explains the deployed model itself (the `.tflite` run by LiteRT, no TensorFlow, no
surrogate), needs only forward passes, and is cheap: the d + 1 rows of one transaction (itself and its d
occluded copies) go through the interpreter in the same batched call that scores it. Its limit: features
are occluded one at a time, so the effect of features that only matter together (say amount and hour) is
split between them arbitrarily, and contributions need not add up to f(x) - f(b).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

TOP_REASONS = 3
CHUNK_TRANSACTIONS = 2048  # per interpreter call: 2048 x (d + 1) rows of d float32s, about 11 MB at d = 37

Predict = Callable[[np.ndarray], np.ndarray]  # (rows, d) float32 -> (rows,) scores


def occluded_rows(x: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """(n, d) -> (n * (d + 1), d): for each transaction, itself followed by its d copies with one feature set
    to the baseline (copy j has feature j occluded)."""
    n, d = x.shape
    rows = np.repeat(x[:, None, :], d + 1, axis=1)  # (n, d + 1, d)
    diagonal = np.arange(d)
    rows[:, diagonal + 1, diagonal] = baseline
    return rows.reshape(n * (d + 1), d)


def score_and_attribute(predict: Predict, x: np.ndarray, baseline: np.ndarray,
                        chunk: int = CHUNK_TRANSACTIONS) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n,) and contributions (n, d) of every transaction, in chunks of `chunk` transactions."""
    x = np.asarray(x, dtype=np.float32)
    baseline = np.asarray(baseline, dtype=np.float32)
    n, d = x.shape
    if baseline.shape != (d,):
        raise ValueError(f"baseline has shape {baseline.shape}, the features have {d} columns")
    scores = np.empty(n, dtype=np.float32)
    contributions = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        part = x[start:start + chunk]
        out = np.asarray(predict(occluded_rows(part, baseline)), dtype=np.float32).reshape(len(part), d + 1)
        scores[start:start + len(part)] = out[:, 0]
        contributions[start:start + len(part)] = out[:, :1] - out[:, 1:]
    return scores, contributions


def top_indices(contributions: np.ndarray, k: int = TOP_REASONS) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices of the k largest contributions, largest first, and whether each is positive."""
    k = min(k, contributions.shape[1])
    best = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(contributions, best, axis=1)
    order = np.argsort(-picked, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    return best, np.take_along_axis(contributions, best, axis=1) > 0


def top_reasons(contributions: np.ndarray, names: Sequence[str], k: int = TOP_REASONS) -> list[list[dict]]:
    """Per row: [{"feature": name, "contribution": c}, ...], at most k, only features that pushed the score up."""
    best, positive = top_indices(contributions, k)
    return [[{"feature": names[j], "contribution": float(f"{row[j]:.6g}")} for j, keep in zip(picks, keeps) if keep]
            for row, picks, keeps in zip(contributions, best, positive)]


def reasons_json(contributions: np.ndarray, names: Sequence[str], k: int = TOP_REASONS) -> list[str]:
    """The same as top_reasons, already serialised as JSON text (the batch path writes it with COPY;
    feature names are plain identifiers, so no escaping is needed)."""
    if any(not name.isidentifier() for name in names):
        raise ValueError("feature names must be plain identifiers")
    prefixes = [f'{{"feature":"{name}","contribution":' for name in names]
    best, positive = top_indices(contributions, k)
    values = np.take_along_axis(contributions, best, axis=1)
    return ["[" + ",".join(prefixes[j] + format(c, ".6g") + "}" for j, c, keep in zip(picks, row, keeps) if keep) + "]"
            for picks, row, keeps in zip(best.tolist(), values.tolist(), positive.tolist())]
