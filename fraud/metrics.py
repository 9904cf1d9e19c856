"""Evaluation metrics, one function each (design.md evaluation protocol)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else float("nan")


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    return float(average_precision_score(y_true, score)) if np.any(y_true) else float("nan")


def card_precision_at_k(frame: pd.DataFrame, k: int) -> float:
    """Per day, the k cards with the highest score (a card's score is its max that day); the share of them
    with at least one fraud, averaged over days. `frame` has columns day, card, score, is_fraud."""
    per_card = frame.groupby(["day", "card"]).agg(score=("score", "max"), is_fraud=("is_fraud", "max")).reset_index()
    daily = per_card.sort_values("score", ascending=False).groupby("day").head(k).groupby("day")["is_fraud"].sum() / k
    return float(daily.mean()) if len(daily) else float("nan")


def precision_recall_at(y_true: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    true_positives = float(np.sum(y_true & flagged))
    precision = true_positives / flagged.sum() if flagged.sum() else 0.0
    recall = true_positives / y_true.sum() if y_true.sum() else float("nan")
    return precision, recall


def threshold_for_budget(scores: np.ndarray, days: int, alerts_per_day: int) -> float:
    """The score above which about `alerts_per_day` alerts a day would have been raised."""
    budget = max(1, alerts_per_day * max(days, 1))
    if len(scores) <= budget:
        return float(np.min(scores)) if len(scores) else 0.5
    return float(np.sort(scores)[::-1][budget - 1])
