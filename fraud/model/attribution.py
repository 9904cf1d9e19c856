"""Why a transaction scored high: its top reasons, by per-feature occlusion against a baseline.

Method. For a transaction x with score f(x) and a baseline vector b (the per-feature median of the
transactions the model learnt from: a typical transaction), the contribution of feature j is

    c_j = f(x) - f(x with x_j replaced by b_j)

that is, how much the score would drop if that one feature were typical. c_j > 0 means feature j pushed the
score up. The top reasons are the (at most) three features with the largest positive contributions, largest
first; a feature equal to its baseline contributes exactly 0 and is never a reason.

Why occlusion: it explains the deployed model itself (the `.tflite` run by LiteRT, no TensorFlow, no
surrogate), needs only forward passes, and is cheap: one occluded copy per feature away from its baseline. The
real-time path runs a transaction and its copies through the interpreter in the call that scores it
(`score_and_attribute`); the batch scorer computes reasons only for the transactions whose reasons are read
(fraud.serving.batch.needs_reasons) and computes their copies with `attribute`: the model's graph read as NumPy
(fraud.model.litert.Network), where a copy's first dense layer is its transaction's pre-activation plus one
weight column times the occluded feature's change, and only the layers after it run on the copies (the same
contributions to float32 rounding: tests/model/test_attribution_linear.py). Its limit: features are occluded one
at a time, so the effect of features that only matter together (say amount and hour) is split between them
arbitrarily, and contributions need not add up to f(x) - f(b).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

TOP_REASONS = 3
# transactions per interpreter call: a smaller call's activations stay in cache (100,000 transactions with their
# occluded copies: 1.32 s at 512, 1.45 s at 2,048, 1.30 s at 256; medians of 5)
CHUNK_TRANSACTIONS = 512

Predict = Callable[[np.ndarray], np.ndarray]  # (rows, d) float32 -> (rows,) scores


def occluded_rows(x: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, d) -> the occluded copies worth running, and for each copy its (transaction, feature): every transaction
    with one feature that is away from its baseline set to the baseline. A feature already at its baseline would
    give the transaction itself again (a contribution of exactly 0), so it gets no copy: one-hot categories and
    the usual zero counts and flags leave about half the copies out on real transactions."""
    transactions, features = np.nonzero(x != baseline)
    copies = x[transactions]
    copies[np.arange(len(copies)), features] = baseline[features]
    return copies, transactions, features


def scores_of(predict: Predict, x: np.ndarray, chunk: int) -> np.ndarray:
    """Scores (n,) of the rows of `x`, `chunk` rows per call."""
    x = np.asarray(x, dtype=np.float32)
    scores = np.empty(len(x), dtype=np.float32)
    for start in range(0, len(x), chunk):
        scores[start : start + chunk] = np.asarray(predict(x[start : start + chunk]), dtype=np.float32).reshape(-1)
    return scores


class Occluder(Protocol):
    """A model's own arithmetic for a row and its occluded copies (fraud.model.litert.Network)."""

    def occluded(
        self, x: np.ndarray, baseline: np.ndarray, transactions: np.ndarray, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


def attribute(
    predict: Predict,
    x: np.ndarray,
    baseline: np.ndarray,
    network: Occluder | None = None,
    chunk: int = CHUNK_TRANSACTIONS,
) -> np.ndarray:
    """Contributions (n, d) of the rows of `x` (the same as score_and_attribute's): by `network` when given, which
    computes each copy from its transaction's first-layer pre-activation (one weight column times the occluded
    feature's change) instead of a whole forward pass; else each row and its copies through `predict`."""
    if network is None:
        return score_and_attribute(predict, x, baseline, chunk)[1]
    x, baseline = _checked(x, baseline)
    contributions = np.zeros(x.shape, dtype=np.float32)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        transactions, features = np.nonzero(part != baseline)  # the copies occluded_rows would make
        own, copies = network.occluded(part, baseline, transactions, features)
        contributions[start + transactions, features] = own[transactions] - copies
    return contributions


def _checked(x: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    baseline = np.asarray(baseline, dtype=np.float32)
    if baseline.shape != (x.shape[1],):
        raise ValueError(f"baseline has shape {baseline.shape}, the features have {x.shape[1]} columns")
    return x, baseline


def score_and_attribute(
    predict: Predict, x: np.ndarray, baseline: np.ndarray, chunk: int = CHUNK_TRANSACTIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n,) and contributions (n, d) of every transaction, in chunks of `chunk` transactions: one
    interpreter call per chunk runs its transactions and their occluded copies."""
    x, baseline = _checked(x, baseline)
    n, d = x.shape
    scores = np.empty(n, dtype=np.float32)
    contributions = np.zeros((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        copies, transactions, features = occluded_rows(part, baseline)
        out = np.asarray(predict(np.concatenate([part, copies])), dtype=np.float32).reshape(-1)
        own = out[: len(part)]
        scores[start : start + len(part)] = own
        contributions[start + transactions, features] = own[transactions] - out[len(part) :]
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
    return [
        [
            {"feature": names[j], "contribution": float(f"{row[j]:.6g}")}
            for j, keep in zip(picks, keeps, strict=False)
            if keep
        ]
        for row, picks, keeps in zip(contributions, best, positive, strict=False)
    ]


def reasons_json(contributions: np.ndarray, names: Sequence[str], k: int = TOP_REASONS) -> list[str]:
    """The same as top_reasons, already serialised as JSON text (the batch path writes it with COPY;
    feature names are plain identifiers, so no escaping is needed)."""
    if any(not name.isidentifier() for name in names):
        raise ValueError("feature names must be plain identifiers")
    prefixes = [f'{{"feature":"{name}","contribution":' for name in names]
    best, positive = top_indices(contributions, k)
    values = np.take_along_axis(contributions, best, axis=1)
    return [
        "["
        + ",".join(prefixes[j] + format(c, ".6g") + "}" for j, c, keep in zip(picks, row, keeps, strict=False) if keep)
        + "]"
        for picks, row, keeps in zip(best.tolist(), values.tolist(), positive.tolist(), strict=False)
    ]
