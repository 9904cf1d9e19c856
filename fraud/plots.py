"""Plots as embedded PNGs (base64), for the HTML report and Dagster metadata."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def daily_volume(daily: pd.DataFrame, budget: int) -> str:
    """daily: day, transactions, flagged."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    top.bar(daily["day"].astype(str), daily["transactions"], color="#4c72b0")
    top.set_ylabel("transactions")
    bottom.bar(daily["day"].astype(str), daily["flagged"], color="#dd8452", label="alerts")
    bottom.axhline(budget, color="black", linestyle="--", linewidth=1, label=f"budget ({budget}/day)")
    bottom.set_ylabel("alerts")
    bottom.legend(loc="upper right", fontsize=8)
    bottom.tick_params(axis="x", rotation=45)
    return _png(fig)


def score_distribution(scores: pd.Series, threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.hist(scores, bins=50, color="#55a868", log=True)
    ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("fraud score")
    ax.set_ylabel("transactions (log)")
    ax.legend(fontsize=8)
    return _png(fig)
