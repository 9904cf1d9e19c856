"""The report's plots as PNG bytes encoded in base64 (embedded as data URIs: the report stays one file)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

BLUE, ORANGE, GREEN, RED, GREY = "#3b6fb6", "#e08a3c", "#4c9f70", "#c8453b", "#6b7280"
plt.rcParams.update(
    {
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "axes.grid": True,
        "grid.alpha": 0.25,
    }
)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _days(daily: pd.DataFrame) -> list[str]:
    return [f"{pd.Timestamp(d):%m-%d}" for d in daily["day"]]


def volume_and_fraud_rate(daily: pd.DataFrame) -> str:
    """daily: day, transactions, fraud_rate (labelled frauds / labelled transactions, NaN when unknown)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    days = _days(daily)
    ax.bar(days, daily["transactions"], color=BLUE, alpha=0.85, label="transactions")
    ax.set_ylabel("transactions")
    rate = ax.twinx()
    rate.plot(days, daily["fraud_rate"] * 100, color=RED, marker="o", linewidth=1.8, label="labelled fraud rate")
    rate.set_ylabel("fraud rate (%)")
    rate.set_ylim(bottom=0)
    rate.grid(False)
    rate.spines["right"].set_visible(True)
    ax.set_title("Volume and fraud rate per day")
    ax.tick_params(axis="x", rotation=45)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return _png(fig)


def alerts_against_budget(daily: pd.DataFrame, budget: int) -> str:
    """daily: day, flagged, emails (customer alert emails sent for that day's transactions)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    days = _days(daily)
    x = np.arange(len(days))
    ax.bar(x - 0.2, daily["flagged"], width=0.4, color=ORANGE, label="flagged transactions")
    ax.bar(x + 0.2, daily["emails"], width=0.4, color=GREEN, label="customer emails")
    ax.axhline(budget, color="black", linestyle="--", linewidth=1, label=f"review budget ({budget}/day)")
    ax.set_xticks(x, days, rotation=45)
    ax.set_ylabel("per day")
    ax.set_title("Alerts per day against the budget")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def score_distribution(scores: pd.Series, is_fraud: pd.Series, threshold: float) -> str:
    """Scores of labelled-fraud, labelled-genuine and unlabelled transactions (log counts)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    bins = np.linspace(0, 1, 41)
    label = is_fraud.astype("boolean")
    fraud, genuine = label.fillna(False).astype(bool), (~label).fillna(False).astype(bool)
    for mask, colour, label in (
        (genuine, BLUE, "labelled genuine"),
        (fraud, RED, "labelled fraud"),
        (is_fraud.isna(), GREY, "not labelled yet"),
    ):
        if mask.any():
            ax.hist(scores[mask], bins=bins, color=colour, alpha=0.6, log=True, label=label)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("fraud score")
    ax.set_ylabel("transactions (log)")
    ax.set_title("Score distribution")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def precision_recall(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> str:
    """The live model's precision-recall curve on labelled scored transactions, with its operating point."""
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    if len(y_true) and y_true.any():
        precision, recall, _ = precision_recall_curve(y_true, scores)
        ax.plot(recall, precision, color=BLUE, linewidth=1.8, label="model")
        flagged = scores >= threshold
        if flagged.any():
            point = (y_true & flagged).sum() / y_true.sum(), (y_true & flagged).sum() / flagged.sum()
            ax.plot(*point, "o", color=RED, markersize=7, label=f"threshold {threshold:.3f}")
        ax.axhline(y_true.mean(), color=GREY, linestyle=":", linewidth=1, label=f"base rate {y_true.mean():.2%}")
    else:
        ax.text(0.5, 0.5, "no labelled fraud yet", ha="center", va="center", color=GREY)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall of the live model")
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return _png(fig)


def breakdown_bars(frame: pd.DataFrame, label: str, title: str, top: int = 12) -> str:
    """frame: <label>, flagged, frauds: flagged transactions and labelled frauds per group, largest first."""
    shown = frame.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(4.6, 0.32 * len(shown) + 1.0))
    y = np.arange(len(shown))
    ax.barh(y + 0.2, shown["flagged"], height=0.4, color=ORANGE, label="flagged")
    ax.barh(y - 0.2, shown["frauds"], height=0.4, color=RED, label="labelled fraud")
    ax.set_yticks(y, [str(v)[:28].replace("$", r"\$") for v in shown[label]])  # "$" would start mathtext
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _png(fig)


def precision_recall_by_model(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Precision-recall curves of several models on the same test rows (model comparison): name -> (is_fraud, score)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, (y, score) in curves.items():
        if np.any(y):
            precision, recall, _ = precision_recall_curve(y, score)
            ax.step(recall, precision, where="post", label=name, linewidth=1.4)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)
