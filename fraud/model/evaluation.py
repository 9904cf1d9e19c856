"""The evaluation protocol (docs/architecture.md#the-evaluation-protocol), one implementation for training, the
quality gate and `fraud evaluate`.

Time runs train window -> label-delay window -> test window. A model trained at the start of the test window
knows only the labels that had arrived by then, so training uses train-window rows labelled before the test
window starts; the delay window's transactions (their labels still unknown) set the alert threshold; cards
already known compromised before the test window are left out of the test set (the team has blocked them).
Every model in a comparison is trained on the same rows and scored on the same test rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from fraud.features.catalog import FEATURE_NAMES
from fraud.model import metrics

DAY = pd.Timedelta(days=1)

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LabelledData:
    """Labelled transactions in time order: `rows` (trans_num, event_time, card_token, is_fraud, labelled_at; both
    times UTC) and the feature matrix `x` (float32, FEATURE_NAMES order), row for row."""

    rows: pd.DataFrame
    x: np.ndarray = field(repr=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> LabelledData:
        """From `fraud.db.queries.labelled_features` (feature vectors as lists in `values`)."""
        rows = pd.DataFrame(
            {
                "trans_num": frame["trans_num"].astype(str).to_numpy(),
                "event_time": pd.to_datetime(frame["event_time"], utc=True).to_numpy(),
                "card_token": frame["card_token"].to_numpy(),
                "is_fraud": frame["is_fraud"].astype(bool).to_numpy(),
                "labelled_at": pd.to_datetime(frame["labelled_at"], utc=True).to_numpy(),
            }
        )
        x = (
            np.array(frame["values"].tolist(), dtype=np.float32).reshape(len(frame), -1)
            if len(frame)
            else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
        )
        return cls.of(rows, x)

    @classmethod
    def of(cls, rows: pd.DataFrame, x: np.ndarray) -> LabelledData:
        """Sorted by event time, then trans_num, so the same data always gives the same order."""
        if len(rows) != len(x):
            raise ValueError(f"{len(rows)} rows but {len(x)} feature vectors")
        if x.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {x.shape[1]}")
        rows = rows.assign(
            event_time=pd.to_datetime(rows["event_time"], utc=True),
            labelled_at=pd.to_datetime(rows["labelled_at"], utc=True),
            is_fraud=rows["is_fraud"].astype(bool),
        )
        order = np.lexsort((rows["trans_num"].to_numpy(), rows["event_time"].to_numpy()))
        return cls(rows.iloc[order].reset_index(drop=True), np.ascontiguousarray(x[order], dtype=np.float32))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def y(self) -> np.ndarray:
        return self.rows["is_fraud"].to_numpy(dtype=bool)

    @property
    def frauds(self) -> int:
        return int(self.y.sum())

    def where(self, mask: np.ndarray) -> LabelledData:
        return LabelledData(self.rows[mask].reset_index(drop=True), self.x[mask])

    def fingerprint(self) -> str:
        """SHA-256 over transaction ids, labels, label times and feature values."""
        digest = hashlib.sha256()
        digest.update(
            pd.util.hash_pandas_object(self.rows[["trans_num", "is_fraud", "labelled_at"]], index=False)
            .to_numpy()
            .tobytes()
        )
        digest.update(self.x.tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class Windows:
    """[train_start, train_end) -> [train_end, test_start) label delay -> [test_start, test_end)."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def as_dict(self) -> dict[str, str]:
        return {
            name: getattr(self, name).isoformat() for name in ("train_start", "train_end", "test_start", "test_end")
        }

    @classmethod
    def from_dict(cls, values: dict) -> Windows:
        return cls(*(pd.Timestamp(values[name]) for name in ("train_start", "train_end", "test_start", "test_end")))


@dataclass(frozen=True)
class Protocol:
    """Window lengths in days. With `train_start` the windows follow each other from that day (`train_days`
    required); without it the test window is the last `test_days` days of the data and the train window reaches
    back `train_days` days before the delay window (all history when None)."""

    delay_days: int
    test_days: int
    train_days: int | None = None
    train_start: date | None = None
    alert_budget_per_day: int = 40
    precision_k: int = 100

    def __post_init__(self):
        if self.test_days < 1 or self.delay_days < 0 or (self.train_days is not None and self.train_days < 1):
            raise ValueError(f"window lengths must be test >= 1, delay >= 0, train >= 1 days: {self}")
        if self.train_start is not None and self.train_days is None:
            raise ValueError("a protocol with train_start needs train_days")

    def windows(self, event_times: pd.Series) -> Windows:
        if self.train_start is not None:
            train_start = pd.Timestamp(self.train_start, tz="UTC")
            train_end = train_start + self.train_days * DAY
            test_start = train_end + self.delay_days * DAY
            return Windows(train_start, train_end, test_start, test_start + self.test_days * DAY)
        if len(event_times) == 0:
            raise ValueError("no labelled transactions to evaluate on")
        times = pd.to_datetime(event_times, utc=True)
        test_end = times.max().floor("D") + DAY
        test_start = test_end - self.test_days * DAY
        train_end = test_start - self.delay_days * DAY
        train_start = train_end - self.train_days * DAY if self.train_days else min(times.min().floor("D"), train_end)
        return Windows(train_start, train_end, test_start, test_end)

    def as_dict(self) -> dict:
        return {
            "train_start": self.train_start.isoformat() if self.train_start else None,
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_days": self.test_days,
            "alert_budget_per_day": self.alert_budget_per_day,
            "precision_k": self.precision_k,
        }


@dataclass(frozen=True)
class Split:
    windows: Windows
    train: LabelledData
    delay: LabelledData
    test: LabelledData
    excluded_known_compromised: int


def split(data: LabelledData, windows: Windows) -> Split:
    times, labelled_at = data.rows["event_time"], data.rows["labelled_at"]
    train = (times >= windows.train_start) & (times < windows.train_end) & (labelled_at < windows.test_start)
    delay = (times >= windows.train_end) & (times < windows.test_start)
    in_test = (times >= windows.test_start) & (times < windows.test_end)
    known = data.rows.loc[data.y & (labelled_at < windows.test_start), "card_token"]
    compromised = data.rows["card_token"].isin(set(known))
    return Split(
        windows,
        data.where(train.to_numpy()),
        data.where(delay.to_numpy()),
        data.where((in_test & ~compromised).to_numpy()),
        excluded_known_compromised=int((in_test & compromised).sum()),
    )


def calibration_rows(split_: Split) -> LabelledData:
    """Where the alert threshold is set: the delay window (the latest traffic before the test window, no labels
    needed), else the last day of the train window."""
    if len(split_.delay):
        return split_.delay
    times = split_.train.rows["event_time"]
    return split_.train.where((times >= split_.windows.train_end - DAY).to_numpy())


def _days(rows: pd.DataFrame) -> int:
    return max(1, rows["event_time"].dt.floor("D").nunique())


def budget_threshold(score: Scorer, split_: Split, alerts_per_day: int) -> float:
    calibration = calibration_rows(split_)
    return metrics.threshold_for_budget(
        score(calibration.x) if len(calibration) else np.zeros(0), _days(calibration.rows), alerts_per_day
    )


def _json_number(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None if value is None or np.isnan(value) else float(value)


def score_metrics(
    test: LabelledData, scores: np.ndarray, threshold: float, protocol: Protocol
) -> dict[str, float | int | None]:
    """The protocol's metrics of one model's test-window scores (None where undefined, e.g. no fraud)."""
    y = test.y
    flagged = scores >= threshold
    precision, recall = metrics.precision_recall_at(y, flagged)
    per_day = pd.DataFrame(
        {"day": test.rows["event_time"].dt.floor("D"), "card": test.rows["card_token"], "score": scores, "is_fraud": y}
    )
    values = {
        "roc_auc": metrics.roc_auc(y, scores),
        "average_precision": metrics.average_precision(y, scores),
        f"card_precision_at_{protocol.precision_k}": metrics.card_precision_at_k(per_day, protocol.precision_k),
        "precision_at_budget": precision,
        "recall_at_budget": recall,
        "alerts_per_day": float(flagged.sum()) / protocol.test_days,
        "test_rows": len(test),
        "test_frauds": int(y.sum()),
    }
    return {name: _json_number(value) for name, value in values.items()}


@dataclass(frozen=True)
class ModelResult:
    name: str
    threshold: float
    metrics: dict[str, float | int | None]
    test_scores: np.ndarray = field(repr=False)


def evaluate_scorer(name: str, score: Scorer, split_: Split, protocol: Protocol) -> ModelResult:
    threshold = budget_threshold(score, split_, protocol.alert_budget_per_day)
    test_scores = score(split_.test.x) if len(split_.test) else np.zeros(0)
    return ModelResult(name, threshold, score_metrics(split_.test, test_scores, threshold, protocol), test_scores)


def random_scorer(seed: int = 0) -> Scorer:
    """The floor every model must clear by far: scores that know nothing (its AP is about the fraud rate)."""

    def score(x: np.ndarray) -> np.ndarray:
        return np.random.default_rng(seed).random(len(x))

    return score


def best_baseline(models: dict[str, dict], network: str) -> str | None:
    """The baseline with the highest average precision; None when it is undefined for every one (no test fraud)."""
    defined = {
        name: values["average_precision"]
        for name, values in models.items()
        if name not in (network, "random") and values.get("average_precision") is not None
    }
    return max(defined, key=defined.get) if defined else None


TABLE_COLUMNS = (
    "roc_auc",
    "average_precision",
    "card_precision_at_{k}",
    "precision_at_budget",
    "recall_at_budget",
    "alerts_per_day",
)


def metrics_table(results: dict[str, dict], precision_k: int = 100) -> str:
    """Markdown table, one row per model."""
    columns = [c.format(k=precision_k) for c in TABLE_COLUMNS]
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in results.items():
        cells = ["-" if values.get(c) is None else f"{values[c]:.4f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the quality gate ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]
    floor: float
    candidate_version: str
    candidate_average_precision: float | None
    latest_version: str | None
    latest_average_precision: float | None  # the promoted model, on the candidate's test window

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "floor": self.floor,
            "candidate_version": self.candidate_version,
            "candidate_average_precision": self.candidate_average_precision,
            "latest_version": self.latest_version,
            "latest_average_precision": self.latest_average_precision,
        }


def quality_gate(
    candidate_version: str,
    candidate_ap: float | None,
    floor: float,
    latest_version: str | None = None,
    latest_ap: float | None = None,
) -> GateDecision:
    """Promote only a model whose average precision reaches the floor and is not below the promoted model's on
    the same test window. A test window without fraud cannot show either, so it blocks."""
    reasons = []
    if candidate_ap is None:
        reasons.append("no fraud in the test window: average precision undefined")
    elif candidate_ap < floor:
        reasons.append(f"average precision {candidate_ap:.4f} below the floor {floor:.4f}")
    if candidate_ap is not None and latest_ap is not None and candidate_ap < latest_ap:
        reasons.append(
            f"average precision {candidate_ap:.4f} below the promoted {latest_version}'s {latest_ap:.4f} "
            "on the same test window"
        )
    return GateDecision(not reasons, tuple(reasons), floor, candidate_version, candidate_ap, latest_version, latest_ap)


def gate_on_window(
    data: LabelledData,
    windows: Windows,
    floor: float,
    candidate_version: str,
    candidate: Scorer,
    latest_version: str | None = None,
    latest: Scorer | None = None,
) -> GateDecision:
    """Score the candidate and the promoted model (when it reads the same features) on the candidate's test
    window and apply `quality_gate`."""
    test = split(data, windows).test
    y = test.y
    candidate_ap = _json_number(metrics.average_precision(y, candidate(test.x))) if len(test) else None
    latest_ap = None
    if latest is not None and latest_version != candidate_version and len(test):
        latest_ap = _json_number(metrics.average_precision(y, latest(test.x)))
    elif latest_version == candidate_version:
        latest_ap = candidate_ap  # re-materialized on unchanged data: the same model
    return quality_gate(candidate_version, candidate_ap, floor, latest_version, latest_ap)
