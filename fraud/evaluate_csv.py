"""`fraud evaluate`: a labelled Sparkov-schema CSV through the pipeline's own steps, in a throwaway FRAUD_HOME
(its own object store folder and embedded PostgreSQL, whatever FRAUD_HOME / FRAUD_DATABASE_URL say):
CSV ingest (fraud/ingest.py) -> the Glue job (glue/process_transactions.py) -> training under the protocol
(fraud/model.py `train`, as the `fraud_model` asset runs it) -> the metrics of the network and of each baseline
on the test window."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from fraud.evaluation import LabelledData, Protocol
from fraud.features import FEATURE_VERSION
from fraud.model import NAME, TrainingConfig, train
from fraud.settings import Settings


class EvaluationError(ValueError):
    """The file cannot be evaluated (no labels, nothing to train on): a one-line message for the user."""


def throwaway_settings(home: Path, base: Settings | None = None) -> Settings:
    """Local mode in `home`: never the user's database, buckets or card-token key."""
    base = base or Settings()
    return base.model_copy(update={"mode": "local", "home": home, "database_url": None, "s3_endpoint_url": None,
                                   "card_token_key": None})


def evaluate_csv(path: Path, protocol: Protocol, config: TrainingConfig = TrainingConfig(),
                 base: Settings | None = None, log: Callable[[str], None] = lambda message: None) -> dict:
    from fraud.db.engine import get_engine, stop_embedded
    from fraud.db.migrate import upgrade
    from fraud.db.queries import labelled_features
    from fraud.ingest import ingest_csv
    from fraud.storage import object_store
    from glue.process_transactions import run as run_glue_job

    home = Path(tempfile.mkdtemp(prefix="fraud-evaluate-"))
    home.chmod(0o755)  # the embedded server may run as an unprivileged user that must reach its data folder
    settings = throwaway_settings(home, base)
    try:
        log(f"ingesting {path.name} into {home}")
        ingested = ingest_csv(Path(path), settings)
        if ingested.transactions_key is None:
            raise EvaluationError(f"no row accepted ({ingested.quarantined:,} quarantined: {ingested.reasons})")
        if not ingested.frauds:
            raise EvaluationError("no labelled fraud: the file needs an is_fraud column with some 1s")
        engine = get_engine(settings)
        upgrade(engine)
        log(f"processing {ingested.accepted:,} rows with the Glue job (local Spark)")
        raw = object_store(settings, settings.raw_bucket)
        etl = run_glue_job({"raw_uri": raw.uri(), "processed_uri": object_store(settings, settings.processed_bucket).uri(),
                            "transactions_keys": ingested.transactions_key, "labels_keys": ingested.labels_key or ""},
                           settings, report=lambda summary: None)
        data = LabelledData.from_frame(labelled_features(engine, FEATURE_VERSION))
        log(f"training on {len(data):,} labelled rows ({data.frauds:,} frauds)")
        try:
            trained = train(data, protocol, config)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        metadata = trained.metadata
        return {
            "csv": str(path),
            "rows": {"read": ingested.rows_read, "accepted": ingested.accepted, "quarantined_ingest": ingested.quarantined,
                     "duplicates": ingested.duplicates, "loaded": etl["rows_loaded"],
                     "quarantined_etl": etl["rows_quarantined"], "labelled": len(data), "frauds": data.frauds},
            "protocol": metadata["protocol"],
            "train": {k: metadata["training_window"][k] for k in ("rows", "frauds")},
            "test": {k: metadata["test_window"][k] for k in ("rows", "frauds", "excluded_known_compromised")},
            "threshold_window": metadata["threshold_window"],
            "models": {name: {**result.metrics, "threshold": result.threshold} for name, result in trained.results.items()},
            "best_baseline": max((n for n in trained.results if n not in (NAME, "random")),
                                 key=lambda n: trained.results[n].metrics["average_precision"] or 0.0),
        }
    finally:
        stop_embedded(settings.pg_dir)
        shutil.rmtree(home, ignore_errors=True)


def evaluate_command(csv: str, train_start: str | None, train_days: int, delay_days: int, test_days: int,
                     json_out: str | None, say: Callable[[str], None]) -> int:
    """`fraud evaluate`: the JSON on stdout (and in `json_out`), progress and errors through `say`; the exit code."""
    import json
    from datetime import date

    from fraud.ingest import IngestError

    path = Path(csv)
    if not path.is_file():
        say(f"error: {csv}: no such file")
        return 2
    try:
        start = date.fromisoformat(train_start) if train_start else None
    except ValueError:
        say(f"error: --train-start: not a date (YYYY-MM-DD): {train_start!r}")
        return 2
    settings = Settings()
    protocol = Protocol(train_start=start, train_days=train_days, delay_days=delay_days, test_days=test_days,
                        alert_budget_per_day=settings.alert_budget_per_day)
    try:
        result = evaluate_csv(path, protocol, TrainingConfig(epochs=settings.train_epochs), settings, log=say)
    except (EvaluationError, IngestError) as error:
        say(f"error: {csv}: {error}")
        return 1 if isinstance(error, EvaluationError) else 2
    text = json.dumps(result, indent=2)
    if json_out:
        Path(json_out).write_text(text + "\n")
    print(text)
    return 0
