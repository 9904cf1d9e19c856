"""Drift: how far the live data has moved from what the promoted model learned from, as the population stability
index (PSI) of each feature and of the model's score, per day since the training window, against a sample of the
training window. Pure numpy/pandas (the samples come from fraud/db/queries.py; the Dagster checks are in
assets/drift_checks.py, the report's section in fraud/outreach/report.py; docs/drift.md says what the levels mean).

PSI = sum over bins of (new% - ref%) * ln(new% / ref%), the bins taken from the reference sample: its deciles for a
continuous feature, one bin per value for a feature with few distinct values (one-hot flags, hours, small counts)
plus a bin for any value the reference never took. It is 0 for identical distributions, symmetric in the two
shares of each bin, and about mu^2 / sigma^2 for a normal shifted by mu (the symmetric Kullback-Leibler divergence).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Bins of a continuous feature: the reference's deciles, the customary PSI binning (each bin ~10% of the reference).
BINS = 10
# A feature with at most this many distinct reference values gets one bin per value (deciles would lump a one-hot
# flag's 0 and 1 together, or leave most bins empty), plus a bin for values the reference never took.
MAX_CATEGORIES = 20
# An empty bin counts as this share of its sample: the log stays finite, and a bin empty on both sides adds 0.
# At 1e-4, a bin holding 10% of one sample and nothing of the other adds about 0.1 * ln(1000) = 0.69.
EPSILON = 1e-4

# The usual reading of PSI (credit scoring's convention, used for model monitoring since):
STABLE_BELOW = 0.10  # below: no meaningful change
SIGNIFICANT_ABOVE = 0.25  # above: the population has shifted; the model's scores may no longer be reliable
# (in between: a moderate shift, worth watching)

# A sample (a day, or the reference) with fewer rows is shown but not judged: two samples of one distribution differ
# by chance by a PSI of about (bins - 1) * (1/rows + 1/reference rows) on average. Against 20,000 reference rows
# with 10 bins, a day of 100 rows averages 0.09 and reaches 0.3 once in a thousand features x days (a week of
# ~50 features is 350 of them); at 300 rows it averages 0.03, stays below 0.1 in 999 of 1000, and passing 0.25 by
# chance is below one in ten million even with a categorical feature's 21 bins (simulated and chi-square tail).
MIN_ROWS = 300

# What the checks and the report compare: a repeatable sample of the training window, and each day since its end
# (at most the last RECENT_DAYS days, each sampled to at most DAY_SAMPLE rows).
REFERENCE_SAMPLE = 20_000
DAY_SAMPLE = 20_000
RECENT_DAYS = 7

STABLE, MODERATE, SIGNIFICANT, TOO_FEW, NO_DATA = "stable", "moderate", "significant", "too few rows", "no data"
# A feature that takes one value per day in the training window (a weekend flag, a day of week) cannot be judged
# one day at a time: a Saturday is all weekend against a window of mixed days, a huge PSI that means nothing. Its
# PSI is shown with this level and not judged.
ONE_A_DAY = "one value a day"
SCORE = "model score"  # the score's row in a drift table


@dataclass(frozen=True)
class Bins:
    """Bins of a reference sample. Continuous: `edges` are inner cut points, bin i = (edges[i-1], edges[i]] with
    open ends. Categorical: `edges` are the reference's distinct values, one bin each, and a last bin for others."""

    edges: np.ndarray
    categorical: bool

    @property
    def size(self) -> int:
        return len(self.edges) + 1

    def index(self, values: np.ndarray) -> np.ndarray:
        position = np.searchsorted(self.edges, values, side="left")
        if not self.categorical:
            return position
        if len(self.edges) == 0:
            return np.zeros(len(values), dtype=np.int64)
        found = self.edges[np.minimum(position, len(self.edges) - 1)] == values
        return np.where(found, position, len(self.edges))

    def shares(self, values: np.ndarray) -> np.ndarray:
        """Share of `values` in each bin, empty bins at EPSILON."""
        counts = np.bincount(self.index(values), minlength=self.size)
        return np.maximum(counts / max(len(values), 1), EPSILON)


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def bins_of(reference: Sequence[float] | np.ndarray, bins: int = BINS) -> Bins:
    """Bins from the reference's quantiles; one per distinct value when it has at most MAX_CATEGORIES of them.
    Tied quantiles (a mass of zeros, say) collapse into one edge: no empty bins of zero width."""
    values = _finite(reference)
    distinct = np.unique(values)
    if len(distinct) <= MAX_CATEGORIES:
        return Bins(distinct, categorical=True)
    return Bins(np.unique(np.quantile(values, np.arange(1, bins) / bins)), categorical=False)


def psi(reference: Sequence[float] | np.ndarray, new: Sequence[float] | np.ndarray, bins: int = BINS) -> float:
    """Population stability index of `new` against `reference` (NaN and infinities left out); NaN when either
    sample is empty: there is nothing to compare, which is not the same as no change."""
    ref, new_ = _finite(reference), _finite(new)
    if len(ref) == 0 or len(new_) == 0:
        return float("nan")
    binning = bins_of(ref, bins)
    expected, actual = binning.shares(ref), binning.shares(new_)
    return max(0.0, float(np.sum((actual - expected) * np.log(actual / expected))))


def level(value: float, rows: int | None = None, min_rows: int = MIN_ROWS, one_a_day: bool = False) -> str:
    """The PSI in words: stable, moderate, significant; "too few rows" for a small sample, "no data" for none,
    "one value a day" for a feature that is constant within each day of the reference (see ONE_A_DAY)."""
    if value != value or rows == 0:  # NaN
        return NO_DATA
    if rows is not None and rows < min_rows:
        return TOO_FEW
    if one_a_day:
        return ONE_A_DAY
    if value > SIGNIFICANT_ABOVE:
        return SIGNIFICANT
    return STABLE if value < STABLE_BELOW else MODERATE


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    psi: float
    level: str
    rows: int  # finite values of the feature in the new sample


def _columns(matrix: np.ndarray | Sequence, width: int) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, width))
    array = array.reshape(len(array), -1)
    if array.shape[1] != width:
        raise ValueError(f"{array.shape[1]} columns for {width} names")
    return array


def drift_table(
    reference_matrix: np.ndarray,
    new_matrix: np.ndarray,
    names: Sequence[str],
    bins: int = BINS,
    min_rows: int = MIN_ROWS,
    one_a_day: Collection[str] = (),
) -> list[FeatureDrift]:
    """PSI of each column (named by `names`, in order) of the new sample against the reference; the features
    named in `one_a_day` get that level instead of a judgement (see ONE_A_DAY)."""
    reference, new = _columns(reference_matrix, len(names)), _columns(new_matrix, len(names))
    table = []
    for i, name in enumerate(names):
        value = psi(reference[:, i], new[:, i], bins)
        rows = int(np.isfinite(new[:, i]).sum())
        judged_on = min(rows, int(np.isfinite(reference[:, i]).sum()))  # a small reference is as noisy as a small day
        table.append(FeatureDrift(str(name), value, level(value, judged_on, min_rows, name in one_a_day), rows))
    return table


def one_value_a_day(reference_matrix: np.ndarray, days: Sequence, names: Sequence[str]) -> list[str]:
    """The features that vary across the reference's days but take a single value within each of them (calendar
    features). Needs at least two days; a feature constant over the whole reference is not one of them."""
    reference = _columns(reference_matrix, len(names))
    day_of = pd.Series(list(days), dtype=object)
    if len(day_of) != len(reference):
        raise ValueError(f"{len(day_of)} days for {len(reference)} rows")
    if day_of.nunique() < 2:
        return []
    frame = pd.DataFrame(reference, columns=range(len(names))).assign(_day=day_of.to_numpy())
    within = frame.groupby("_day").nunique(dropna=True).max()
    overall = frame.drop(columns="_day").nunique(dropna=True)
    return [str(names[i]) for i in range(len(names)) if within[i] <= 1 and overall[i] > 1]


COLUMNS = ["day", "feature", "psi", "level", "rows"]


def per_day(
    reference_matrix: np.ndarray,
    new_matrix: np.ndarray,
    days: Sequence,
    names: Sequence[str],
    bins: int = BINS,
    min_rows: int = MIN_ROWS,
    one_a_day: Collection[str] = (),
) -> pd.DataFrame:
    """drift_table for each day of the new sample (`days`: one per row): day, feature, psi, level, rows."""
    new = _columns(new_matrix, len(names))
    day_of = pd.Series(list(days), dtype=object)
    if len(day_of) != len(new):
        raise ValueError(f"{len(day_of)} days for {len(new)} rows")
    frames = []
    for day in sorted(day_of.unique()):
        rows = [
            vars(d)
            for d in drift_table(reference_matrix, new[(day_of == day).to_numpy()], names, bins, min_rows, one_a_day)
        ]
        frames.append(pd.DataFrame(rows).assign(day=day))
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)


def judged(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose day had enough rows to read a level from."""
    return frame[frame["level"].isin((STABLE, MODERATE, SIGNIFICANT))]


def significant(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["level"] == SIGNIFICANT]


def max_psi(frame: pd.DataFrame) -> float:
    """The largest judged PSI; NaN when no day had enough rows."""
    values = judged(frame)["psi"]
    return float(values.max()) if len(values) else float("nan")


def by_feature(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per feature, worst first: feature, max_psi (judged days), worst_day, level (of that day), and one
    column of PSI per day (NaN where no data)."""
    if frame.empty:
        return pd.DataFrame(columns=["feature", "max_psi", "worst_day", "level"])
    wide = frame.pivot(index="feature", columns="day", values="psi")
    scored = judged(frame).sort_values(["psi", "day"], ascending=[False, True]).drop_duplicates("feature")
    worst = scored.set_index("feature")
    summary = pd.DataFrame({"feature": wide.index})
    summary["max_psi"] = summary["feature"].map(worst["psi"]).astype(float)
    summary["worst_day"] = summary["feature"].map(worst["day"])
    summary["level"] = (
        summary["feature"].map(worst["level"]).fillna(summary["feature"].map(frame.groupby("feature")["level"].first()))
    )
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["feature"]))}  # ties: the input's order
    summary = (
        summary.assign(_order=summary["feature"].map(order))
        .sort_values(["max_psi", "_order"], ascending=[False, True], na_position="last")
        .drop(columns="_order")
    )
    return summary.merge(wide.reset_index(), on="feature").reset_index(drop=True)


def worst(frame: pd.DataFrame, top: int = 5) -> list[dict]:
    """The `top` features by their largest judged PSI: feature, psi, day, level."""
    table = by_feature(frame).dropna(subset=["max_psi"]).head(top)
    return [
        {"feature": r.feature, "psi": round(float(r.max_psi), 4), "day": str(r.worst_day), "level": r.level}
        for r in table.itertuples()
    ]


def _cell(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def markdown(frame: pd.DataFrame) -> str:
    """| feature | PSI of each day | level (of its worst day) |, worst feature first."""
    table = by_feature(frame)
    days = sorted(frame["day"].unique()) if len(frame) else []
    header = ["feature", *(f"{day}" for day in days), "level"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in table.to_dict("records"):
        name = re.sub(r"([|\\`*_])", r"\\\1", str(row["feature"]))
        lines.append("| " + " | ".join([name, *(_cell(row[day]) for day in days), str(row["level"])]) + " |")
    return "\n".join(lines)


# --- from the model's metadata and the database's samples ---


def training_window(metadata: dict) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """[start, end) of the model's training window (UTC), when its metadata names one."""
    window = metadata.get("training_window")
    if not isinstance(window, dict) or not window.get("start") or not window.get("end"):
        return None
    start, end = (pd.Timestamp(window[k]) for k in ("start", "end"))
    return tuple(t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC") for t in (start, end))


def feature_names(metadata: dict, width: int, fallback: Sequence[str] = ()) -> list[str]:
    """The names of the model's feature vector: its metadata's, else `fallback` (the code's list) when it fits the
    width, else positions."""
    for names in (metadata.get("feature_names") or (), fallback):
        if len(names) == width:
            return [str(n) for n in names]
    return [f"feature {i}" for i in range(width)]


@dataclass(frozen=True)
class DriftResult:
    features: pd.DataFrame  # per_day of the features: day, feature, psi, level, rows
    score: pd.DataFrame  # per_day of the model's score (feature = SCORE)
    reference_rows: int
    window: tuple[pd.Timestamp, pd.Timestamp] | None
    note: str | None = None  # why there is nothing to compare, when so

    @classmethod
    def nothing(
        cls, note: str, window: tuple[pd.Timestamp, pd.Timestamp] | None = None, reference_rows: int = 0
    ) -> DriftResult:
        empty = pd.DataFrame(columns=COLUMNS)
        return cls(empty, empty, reference_rows, window, note)

    @property
    def days(self) -> list:
        return sorted(set(self.features["day"]) | set(self.score["day"]))


def _matrix(values: pd.Series) -> np.ndarray:
    return np.array(values.tolist(), dtype=np.float64).reshape(len(values), -1) if len(values) else np.zeros((0, 0))


def from_samples(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    metadata: dict,
    fallback_names: Sequence[str] = (),
    min_rows: int = MIN_ROWS,
) -> DriftResult:
    """reference: values (feature vectors), score (NaN when not scored) and, when known, day of the training
    window's sample; recent: day, values, score of the days since. The features named from the model's metadata."""
    window = training_window(metadata)
    if reference.empty:
        return DriftResult.nothing("no transaction of the training window has features of the model's version", window)
    if recent.empty:
        return DriftResult.nothing(
            "no transaction since the training window yet: nothing to compare", window, len(reference)
        )
    ref, new = _matrix(reference["values"]), _matrix(recent["values"])
    if ref.shape[1] != new.shape[1]:
        return DriftResult.nothing(
            f"feature vectors of {ref.shape[1]} values in the training window but {new.shape[1]} since",
            window,
            len(reference),
        )
    names = feature_names(metadata, ref.shape[1], fallback_names)
    days = list(recent["day"])
    calendar = one_value_a_day(ref, reference["day"], names) if "day" in reference else []
    features = per_day(ref, new, days, names, min_rows=min_rows, one_a_day=calendar)
    score = per_day(
        reference["score"].astype(float).to_numpy(),
        recent["score"].astype(float).to_numpy(),
        days,
        [SCORE],
        min_rows=min_rows,
    )
    return DriftResult(features, score, len(reference), window)
