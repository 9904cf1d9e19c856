"""`fraud evaluate`: a labelled Sparkov-schema CSV through the pipeline's own steps, in a throwaway FRAUD_HOME
(its own object store folder and embedded PostgreSQL, whatever FRAUD_HOME / FRAUD_DATABASE_URL say):
CSV ingest (fraud/ingest/csv_files.py) -> the Glue job (glue/process_transactions.py) -> the protocol's windows, checked
before any training -> training under the protocol (fraud/model/network.py `train`, as the `fraud_model` asset runs it)
-> the metrics of the network and of each baseline on the test window (and, on request, every test row's
scores as CSV)."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.core.settings import Settings
from fraud.features.catalog import FEATURE_VERSION
from fraud.model import evaluation
from fraud.model.baselines import BASELINES
from fraud.model.evaluation import DAY, LabelledData, Protocol, Split
from fraud.model.network import NAME, TrainingConfig, check_trainable, train
from fraud.outreach.report import csv_for_people

# a suggested window holds at least this many frauds in the train and in the test window when the file allows:
# with fewer, the test metrics are too noisy to tell models apart
TARGET_FRAUDS = 10


class EvaluationError(ValueError):
    """The file cannot be evaluated (no labels, nothing to train on): a message for the user."""


def throwaway_settings(home: Path, base: Settings | None = None, label_delay_days: float | None = None) -> Settings:
    """Local mode in `home`: never the user's database, buckets or card-token key. `label_delay_days` (when given)
    replaces FRAUD_LABEL_DELAY_DAYS: the CSV's labels become known that long after each transaction."""
    base = base or Settings()
    update = {"mode": "local", "home": home, "database_url": None, "s3_endpoint_url": None, "card_token_key": None}
    if label_delay_days is not None:
        update["label_delay_days"] = float(label_delay_days)
    return base.model_copy(update=update)


# --- the windows, before any training --------------------------------------------------------------------


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _days(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """A window's days, both ends included."""
    return f"{start:%Y-%m-%d} .. {end - DAY:%Y-%m-%d}" if end > start else f"{start:%Y-%m-%d} (no day)"


def window_sizes(split_: Split) -> dict[str, dict]:
    """Rows and frauds of each window of the split (start inclusive, end exclusive, as in the model metadata)."""
    w = split_.windows
    return {
        "train": {
            "start": w.train_start.isoformat(),
            "end": w.train_end.isoformat(),
            "rows": len(split_.train),
            "frauds": split_.train.frauds,
        },
        "delay": {
            "start": w.train_end.isoformat(),
            "end": w.test_start.isoformat(),
            "rows": len(split_.delay),
            "frauds": split_.delay.frauds,
        },
        "test": {
            "start": w.test_start.isoformat(),
            "end": w.test_end.isoformat(),
            "rows": len(split_.test),
            "frauds": split_.test.frauds,
            "excluded_known_compromised": split_.excluded_known_compromised,
        },
    }


def describe_windows(split_: Split) -> list[str]:
    """One line per window: its days, rows and frauds."""
    w = split_.windows
    excluded = split_.excluded_known_compromised
    return [
        f"train window {_days(w.train_start, w.train_end)}: {_n(len(split_.train), 'row')}, "
        f"{_n(split_.train.frauds, 'fraud')} (the rows labelled before the test window starts)",
        f"delay window {_days(w.train_end, w.test_start)}: {_n(len(split_.delay), 'row')}, "
        f"{_n(split_.delay.frauds, 'fraud')} (not trained on; the alert threshold is set on them)",
        f"test window  {_days(w.test_start, w.test_end)}: {_n(len(split_.test), 'row')}, "
        f"{_n(split_.test.frauds, 'fraud')}"
        + (f" ({_n(excluded, 'row')} of cards known compromised before it left out)" if excluded else ""),
    ]


def window_problems(split_: Split) -> list[str]:
    """Why the split cannot be evaluated (empty when it can): too little fraud to train on (fraud.model.network's
    `check_trainable`), or a test window where average precision and ROC AUC are undefined."""
    problems = []
    try:
        check_trainable(split_)
    except ValueError as error:
        problems.append(str(error))
    if not len(split_.test):
        problems.append("no transaction in the test window")
    elif not split_.test.frauds:
        problems.append("no fraud in the test window: average precision and ROC AUC would be undefined")
    elif split_.test.frauds == len(split_.test):
        problems.append("only frauds in the test window: ROC AUC would be undefined")
    return problems


@dataclass(frozen=True)
class WindowSuggestion:
    protocol: Protocol  # with train_start
    split: Split  # what it gives on the data

    def options(self) -> str:
        p = self.protocol
        return (
            f"--train-start {p.train_start:%Y-%m-%d} --train-days {p.train_days} --delay-days {p.delay_days} "
            f"--test-days {p.test_days}"
        )


def _scales() -> list[float]:
    """Window lengths as multiples of the requested ones, in order of preference: the requested lengths, longer
    ones, then (for a file too short for them) shorter ones."""
    return [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 1 / 2, 1 / 4, 1 / 8]


def suggest_windows(
    data: LabelledData, protocol: Protocol, target_frauds: int = TARGET_FRAUDS
) -> WindowSuggestion | None:
    """Windows that fit `data`: a train start and train/test lengths in the protocol's proportions (its delay
    kept) whose train window has frauds to train on (labelled before the test window) and whose test window has
    frauds (not on cards already known compromised). The requested lengths are kept when some start gives both
    windows `target_frauds` frauds, else the shortest longer ones that do, else the lengths and start with the
    most frauds in the poorer window. Among starts of equal merit the latest wins (the most recent data). None
    when no window fits. Pure: reads only `data`."""
    if not data.frauds or not len(data):
        return None
    times = data.rows["event_time"]
    first = times.min().floor("D")
    span = int((times.max().floor("D") + DAY - first) / DAY)  # whole days the file covers

    def offsets(values: pd.Series) -> np.ndarray:  # in days since the file's first day
        return ((values - first) / DAY).to_numpy(dtype=float)

    frauds = data.rows[data.y]
    event, labelled = offsets(frauds["event_time"]), offsets(frauds["labelled_at"])
    # a test fraud counts only if no fraud of its card was labelled before the test window (see evaluation.split)
    known = offsets(frauds.groupby("card_token")["labelled_at"].transform("min"))
    base_train = protocol.train_days or protocol.test_days
    delay = protocol.delay_days
    candidates = []  # (preference of the lengths, merit, start, train days, test days)
    seen = set()
    for preference, scale in enumerate(_scales()):
        train_days, test_days = max(1, round(base_train * scale)), max(1, round(protocol.test_days * scale))
        if (train_days, test_days) in seen or train_days + delay + test_days > span:
            continue
        seen.add((train_days, test_days))
        starts = np.arange(span - (train_days + delay + test_days) + 1, dtype=float)[:, None]
        test_start = starts + train_days + delay
        train_frauds = ((event >= starts) & (event < starts + train_days) & (labelled < test_start)).sum(axis=1)
        test_frauds = ((event >= test_start) & (event < test_start + test_days) & (known >= test_start)).sum(axis=1)
        fits = (train_frauds >= 2) & (test_frauds >= 1)
        for start in np.flatnonzero(fits):
            candidates.append(
                (
                    preference,
                    int(min(train_frauds[start], test_frauds[start], target_frauds)),
                    int(start),
                    train_days,
                    test_days,
                )
            )
    if not candidates:
        return None
    reaching = [c for c in candidates if c[1] >= target_frauds]
    if reaching:  # the most preferred lengths that reach the target, the latest start
        ranked = sorted(reaching, key=lambda c: (c[0], -c[2]))
    else:  # the most frauds in the poorer window, then the preferred lengths, then the latest start
        ranked = sorted(candidates, key=lambda c: (-c[1], c[0], -c[2]))
    # the counts above follow evaluation.split's rules on the frauds alone: the split itself has the last word
    for _, _, start, train_days, test_days in ranked[:20]:
        suggested = Protocol(
            train_start=(first + start * DAY).date(),
            train_days=train_days,
            delay_days=delay,
            test_days=test_days,
            alert_budget_per_day=protocol.alert_budget_per_day,
            precision_k=protocol.precision_k,
        )
        split_ = evaluation.split(data, suggested.windows(times))
        if not window_problems(split_):
            return WindowSuggestion(suggested, split_)
    return None


def _fraud_days(data: LabelledData) -> int:
    return int(data.rows.loc[data.y, "event_time"].dt.floor("D").nunique())


def _data_line(data: LabelledData) -> str:
    times = data.rows["event_time"]
    return (
        f"labelled data: {_n(len(data), 'row')}, {_n(data.frauds, 'fraud')} on {_n(_fraud_days(data), 'day')}, "
        f"{times.min():%Y-%m-%d} .. {times.max():%Y-%m-%d}"
    )


def windows_error(data: LabelledData, split_: Split, protocol: Protocol, problems: list[str]) -> str:
    """The message of a file the protocol's windows do not fit: each window's sizes, the file's, and windows
    that fit it."""
    lines = [
        "the windows do not fit this file: " + "; ".join(problems),
        *("  " + line for line in describe_windows(split_)),
        "  " + _data_line(data),
    ]
    suggestion = suggest_windows(data, protocol)
    if suggestion is None:
        lines.append(
            f"  no train/test windows of this file hold labelled frauds in both (the delay window kept at "
            f"{protocol.delay_days} days): it needs more labelled fraud"
        )
    else:
        s = suggestion.split
        lines.append(
            f"  try: {suggestion.options()}  (train {_n(len(s.train), 'row')}, {_n(s.train.frauds, 'fraud')}; "
            f"test {_n(len(s.test), 'row')}, {_n(s.test.frauds, 'fraud')})"
        )
    return "\n".join(lines)


# --- scores and the result ----------------------------------------------------------------------------------


def scores_frame(test: LabelledData, results: dict) -> pd.DataFrame:
    """One row per test transaction, in the order the models scored them: its id, time, card, label and one
    column per model's score."""
    frame = pd.DataFrame(
        {
            "trans_num": test.rows["trans_num"].to_numpy(),
            "event_time": test.rows["event_time"].map(lambda t: t.isoformat()).to_numpy(),
            "card_token": test.rows["card_token"].to_numpy(),
            "is_fraud": test.y.astype(int),
        }
    )
    for name, result in results.items():
        if len(result.test_scores) != len(test):
            raise ValueError(f"{name}: {len(result.test_scores)} scores for {len(test)} test rows")
        frame[name] = np.asarray(result.test_scores, dtype=np.float64)
    return frame


def evaluation_home() -> Path:
    """A fresh throwaway FRAUD_HOME, 0700 as mkdtemp makes it: it holds the file's card numbers. (Run as root, the
    embedded server widens it to o+rx to reach its data folder; what is inside stays 0600/0700.)"""
    return Path(tempfile.mkdtemp(prefix="fraud-evaluate-"))


def evaluate_csv(
    path: Path,
    protocol: Protocol,
    config: TrainingConfig = TrainingConfig(),
    base: Settings | None = None,
    log: Callable[[str], None] = lambda message: None,
    label_delay_days: float | None = None,
    scores_out: Path | None = None,
) -> dict:
    """The pipeline on `path` (see the module docstring); raises EvaluationError, before any training, when the
    windows do not fit the file."""
    from fraud.core.storage import object_store
    from fraud.db.engine import get_engine, stop_embedded
    from fraud.db.migrate import upgrade
    from fraud.db.queries import labelled_features
    from fraud.db.roles import DbRole
    from fraud.ingest.csv_files import ingest_csv
    from glue.process_transactions import run as run_glue_job

    home = evaluation_home()
    settings = throwaway_settings(home, base, label_delay_days)
    try:
        delay = settings.label_delay_days
        log(f"ingesting {path.name} into {home} (labels known {delay:g} days after each transaction)")
        ingested = ingest_csv(Path(path), settings)
        if ingested.transactions_key is None:
            raise EvaluationError(f"no row accepted ({ingested.quarantined:,} quarantined: {ingested.reasons})")
        if not ingested.frauds:
            raise EvaluationError("no labelled fraud: the file needs an is_fraud column with some 1s")
        engine = get_engine(settings, role=DbRole.REPORTING)
        upgrade(engine)
        log(f"processing {ingested.accepted:,} rows with the Glue job (local Spark)")
        raw = object_store(settings, settings.raw_bucket)
        etl = run_glue_job(
            {
                "raw_uri": raw.uri(),
                "processed_uri": object_store(settings, settings.processed_bucket).uri(),
                "transactions_keys": ingested.transactions_key,
                "labels_keys": ingested.labels_key or "",
            },
            settings,
            report=lambda summary: None,
        )
        data = LabelledData.from_frame(labelled_features(engine, FEATURE_VERSION))
        if not len(data):
            raise EvaluationError("no labelled row came out of the Glue job")
        split_ = evaluation.split(data, protocol.windows(data.rows["event_time"]))
        problems = window_problems(split_)
        if problems:  # before any training
            raise EvaluationError(windows_error(data, split_, protocol, problems))
        log(_data_line(data))
        for line in describe_windows(split_):
            log(line)
        log(f"training the network and {len(BASELINES)} baselines ({', '.join(BASELINES)}) on the train window")
        try:
            trained = train(data, protocol, config)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        metadata = trained.metadata
        models = {name: {**result.metrics, "threshold": result.threshold} for name, result in trained.results.items()}
        if scores_out is not None:
            Path(scores_out).write_text(csv_for_people(scores_frame(trained.test, trained.results)))
            log(f"test-window scores of every model: {scores_out}")
        return {
            "csv": str(path),
            "rows": {
                "read": ingested.rows_read,
                "accepted": ingested.accepted,
                "quarantined_ingest": ingested.quarantined,
                "duplicates": ingested.duplicates,
                "loaded": etl["rows_loaded"],
                "quarantined_etl": etl["rows_quarantined"],
                "labelled": len(data),
                "frauds": data.frauds,
            },
            "label_delay_days": settings.label_delay_days,
            "protocol": metadata["protocol"],
            "windows": window_sizes(split_),
            "train": {k: metadata["training_window"][k] for k in ("rows", "frauds")},
            "test": {k: metadata["test_window"][k] for k in ("rows", "frauds", "excluded_known_compromised")},
            "threshold_window": metadata["threshold_window"],
            "models": models,
            "best_baseline": evaluation.best_baseline(models, NAME),
            "scores": str(scores_out) if scores_out is not None else None,
        }
    finally:
        stop_embedded(settings.pg_dir)
        shutil.rmtree(home, ignore_errors=True)


def evaluate_command(
    csv: str,
    train_start: str | None,
    train_days: int,
    delay_days: int | None,
    test_days: int,
    json_out: str | None,
    say: Callable[[str], None],
    label_delay_days: float | None = None,
    scores: str | None = None,
) -> int:
    """`fraud evaluate`: the JSON on stdout (and in `json_out`), progress and errors through `say`; the exit code.
    `delay_days` None: the label delay rounded up to whole days (as the fraud_model asset's protocol)."""
    import json

    from fraud.ingest.csv_files import IngestError

    path = Path(csv)
    if not path.is_file():
        say(f"error: {csv}: no such file")
        return 2
    try:
        start = date.fromisoformat(train_start) if train_start else None
    except ValueError:
        say(f"error: --train-start: not a date (YYYY-MM-DD): {train_start!r}")
        return 2
    if label_delay_days is not None and not (label_delay_days >= 0 and math.isfinite(label_delay_days)):
        say(f"error: --label-delay-days: not a number of days >= 0: {label_delay_days!r}")
        return 2
    settings = Settings()
    label_delay = settings.label_delay_days if label_delay_days is None else label_delay_days
    protocol = Protocol(
        train_start=start,
        train_days=train_days,
        delay_days=math.ceil(label_delay) if delay_days is None else delay_days,
        test_days=test_days,
        alert_budget_per_day=settings.alert_budget_per_day,
    )
    try:
        result = evaluate_csv(
            path,
            protocol,
            TrainingConfig(epochs=settings.train_epochs),
            settings,
            log=say,
            label_delay_days=label_delay_days,
            scores_out=Path(scores) if scores else None,
        )
    except (EvaluationError, IngestError) as error:
        say(f"error: {csv}: {error}")
        return 1 if isinstance(error, EvaluationError) else 2
    text = json.dumps(result, indent=2)
    if json_out:
        Path(json_out).write_text(text + "\n")
    print(text)
    return 0
