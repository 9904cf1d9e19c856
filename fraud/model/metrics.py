"""Evaluation metrics, one function each (docs/architecture.md#the-evaluation-protocol). Undefined values (no fraud,
or a single class) are NaN; the evaluation turns them into JSON nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random fraud scores above a random legitimate transaction (ties count half)."""
    return float(roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else float("nan")


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Mean of the precision at the rank of each fraud (tied scores form one step)."""
    return float(average_precision_score(y_true, score)) if np.any(y_true) else float("nan")


def card_precision_at_k(frame: pd.DataFrame, k: int) -> float:
    """Per day, the k cards with the highest score (a card's score is its max that day); the share of them
    with at least one fraud, averaged over days. `frame` has columns day, card, score, is_fraud. A day with
    fewer than k cards still divides by k: the team had k reviews to spend."""
    per_card = frame.groupby(["day", "card"]).agg(score=("score", "max"), is_fraud=("is_fraud", "max")).reset_index()
    top = per_card.sort_values(["score", "card"], ascending=[False, True], kind="stable").groupby("day").head(k)
    daily = top.groupby("day")["is_fraud"].sum() / k
    return float(daily.mean()) if len(daily) else float("nan")


def precision_recall_at(y_true: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    """Precision and recall of a set of alerts (precision 0 when nothing is flagged, recall NaN without fraud)."""
    y_true, flagged = np.asarray(y_true, dtype=bool), np.asarray(flagged, dtype=bool)
    true_positives = float(np.sum(y_true & flagged))
    precision = true_positives / flagged.sum() if flagged.sum() else 0.0
    recall = true_positives / y_true.sum() if y_true.sum() else float("nan")
    return precision, recall


def threshold_for_budget(scores: np.ndarray, days: int, alerts_per_day: int) -> float:
    """The score at or above which `alerts_per_day` alerts a day would have been raised on these scores
    (ties at the threshold may add a few)."""
    budget = max(1, alerts_per_day * max(days, 1))
    if len(scores) <= budget:
        return float(np.min(scores)) if len(scores) else 0.5
    return float(np.sort(scores)[::-1][budget - 1])
