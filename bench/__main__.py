"""`make bench`: each figure is a ratio against a baseline measured in the same run (absolute times drift
on shared machines; ratios much less so). Uses its own temporary FRAUD_HOME and embedded PostgreSQL.

`python -m bench [--only load,simulator,etl,scoring,api,training,robustness] [--json FILE]`: a line as each phase
starts and ends, then the table; `--json` writes one object per phase run, its figures by name (`etl`: `rows`,
`seconds`, `peak_memory_gib`, ...; see bench/README.md "Running")."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from bench.usage import GIB, TreeUsage
from fraud.core.settings import Settings

console = Console(width=150)  # a wide table even when piped to a file
REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return median(times)


def processed_frame(rows: int):
    """A processed batch like the Glue job hands to the loader, from the simulator."""
    from datetime import date

    from fraud.core.privacy import card_token, normalize_card_number
    from fraud.features.catalog import FEATURE_NAMES
    from fraud.ingest.simulate import build_world, simulate_days

    world = build_world(max(200, rows // 40), seed=1)
    days = simulate_days(world, date(2026, 1, 1), 20, 0.01, 2.0)
    import pandas as pd

    frame = pd.concat([d.transactions for d in days]).head(rows).reset_index(drop=True)
    digits = frame["cc_num"].map(normalize_card_number)
    rng = np.random.default_rng(0)
    return frame.assign(
        event_time=pd.to_datetime(frame["trans_date_trans_time"], utc=True),
        card_token=digits.map(lambda d: card_token(d, b"bench")),
        last4=digits.str[-4:],
        batch_id="bench",
        features=list(rng.random((len(frame), len(FEATURE_NAMES)))),
    )


def bench_load(engine, rows: int) -> tuple[float, float]:
    """COPY + INSERT … ON CONFLICT (fraud.db.load) against row-by-row ORM merges of the same rows."""
    from sqlalchemy import text

    from fraud.db.load import load_processed

    frame = processed_frame(rows)
    labels = frame[["trans_num"]].assign(is_fraud=False, labelled_at=frame["event_time"])

    def reset():
        with engine.begin() as connection:
            connection.execute(
                text(
                    "TRUNCATE fact_transaction, fraud_score, transaction_features, transaction_label, dim_card, "
                    "dim_merchant, batch_load CASCADE"
                )
            )

    def copy_load():
        reset()
        load_processed(engine, frame, labels, [])

    records = [
        dict(
            trans_num=r.trans_num,
            event_time=r.event_time,
            card_token=r.card_token,
            last4=r.last4,
            merchant=r.merchant,
            category=r.category,
            amount=float(r.amt),
            features=[float(v) for v in r.features],
        )
        for r in frame.itertuples()
    ]

    def row_by_row():
        """The naive way: an ORM merge (SELECT, then INSERT) per row, flushed row by row."""
        from sqlalchemy.orm import Session

        from fraud.db.models import DimCard, DimMerchant, FactTransaction, TransactionFeatures

        reset()
        with Session(engine) as session:
            for r in records:
                session.merge(DimCard(card_token=r["card_token"], last4=r["last4"]))
                session.merge(DimMerchant(merchant=r["merchant"]))
                session.merge(
                    FactTransaction(
                        trans_num=r["trans_num"],
                        event_time=r["event_time"],
                        card_token=r["card_token"],
                        merchant=r["merchant"],
                        category=r["category"],
                        amount=r["amount"],
                        batch_id="bench",
                    )
                )
                session.merge(
                    TransactionFeatures(
                        trans_num=r["trans_num"],
                        feature_version="v2",
                        values=r["features"],
                        event_day=r["event_time"].date(),  # UTC: the partition key (migration 0009)
                    )
                )
                session.flush()
            session.commit()

    return timed(row_by_row, 1), timed(copy_load, 3)


def naive_faker_transactions(n: int, customers: list[dict]) -> list[dict]:
    """The baseline: one transaction at a time with Faker and the random module."""
    import random
    import uuid

    from faker import Faker

    from fraud.core.schema import CATEGORIES

    fake = Faker("en_US")
    fake.seed_instance(1)
    rows = []
    for _ in range(n):
        holder = random.choice(customers)
        when = fake.date_time_between(start_date="-30d", end_date="now")
        rows.append(
            {
                **holder,
                "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                "unix_time": int(when.timestamp()),
                "merchant": f"fraud_{fake.company()}",
                "category": random.choice(CATEGORIES),
                "amt": round(random.lognormvariate(3.8, 0.9), 2),
                "trans_num": uuid.uuid4().hex,
                "merch_lat": holder["lat"] + random.gauss(0, 0.3),
                "merch_long": holder["long"] + random.gauss(0, 0.3),
            }
        )
    return rows


def bench_simulator() -> tuple[float, float, int, float]:
    """Vectorized simulator against the naive generator, per transaction; and a one-million-row run."""
    from datetime import date

    from fraud.ingest.simulate import build_world, simulate_days

    world = build_world(2_000, seed=1)
    customers = world.customers.drop(columns=["daily_rate", "wealth"]).to_dict("records")
    naive_rows = 5_000
    naive = timed(lambda: naive_faker_transactions(naive_rows, customers), 1) / naive_rows
    batches = []
    vectorized_time = timed(lambda: batches.append(simulate_days(world, date(2026, 1, 1), 25, 0.008, 2.0)), 1)
    rows = sum(len(b.transactions) for b in batches[-1])
    big_world = build_world(20_000, seed=2)
    big = []
    million_time = timed(lambda: big.append(simulate_days(big_world, date(2026, 1, 1), 25, 0.008, 2.0)), 1)
    million_rows = sum(len(b.transactions) for b in big[-1])
    return naive, vectorized_time / rows, million_rows, million_time


def raw_to_pandas(store, keys: list[str], key: bytes):
    """The baseline's input: the raw batches read and tokenized one row at a time in Python."""
    import pandas as pd

    from fraud.core.privacy import card_token, normalize_card_number
    from fraud.core.schema import decode_jsonl_gz

    frame = pd.DataFrame([row for k in keys for row in decode_jsonl_gz(store.get_bytes(k))])
    digits = frame["cc_num"].map(normalize_card_number)
    frame["card_token"] = digits.map(lambda d: card_token(d, key))
    frame["event_time"] = pd.to_datetime(frame["trans_date_trans_time"], utc=True)
    for column in ("amt", "lat", "long", "merch_lat", "merch_long", "city_pop"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def postmaster_pid(settings: Settings) -> int | None:
    """The embedded PostgreSQL's server process; None when none runs in the settings' home (FRAUD_DATABASE_URL)."""
    pid_file = settings.pg_dir / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def bench_etl(settings, cards: int, days: int) -> dict:
    """The Spark job (raw -> features -> Parquet -> PostgreSQL) against pandas groupby/rolling on the same
    simulated rows; both must agree on a sample."""
    import pandas as pd
    from sqlalchemy import text

    from bench.pandas_features import pandas_features
    from fraud.core.schema import decode_jsonl_gz
    from fraud.core.storage import object_store
    from fraud.db.engine import get_engine
    from fraud.features.catalog import FEATURE_NAMES
    from fraud.ingest.raw_zone import label_keys, transaction_keys
    from lambdas.generator.handler import handler as generate

    world_settings = settings.model_copy(update={"sim_customers": cards, "sim_days": days})
    generate({}, settings=world_settings)
    raw = object_store(settings, settings.raw_bucket)
    keys, labels = transaction_keys(raw), label_keys(raw)
    args = {
        "raw_uri": raw.uri(),
        "processed_uri": object_store(settings, settings.processed_bucket).uri(),
        "transactions_keys": ",".join(keys),
        "labels_keys": ",".join(labels),
    }
    with tempfile.TemporaryDirectory(prefix="fraud-bench-etl-") as folder:
        out, log = Path(folder) / "summary.json", Path(folder) / "job.log"
        started = time.perf_counter()
        with open(log, "wb") as output:  # Spark's own console lines go to the log, shown only on failure
            job = subprocess.Popen(
                [sys.executable, "-m", "bench.etl_job", json.dumps(args), str(out)],
                cwd=REPO,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            with TreeUsage(job.pid, {"database": postmaster_pid(settings)}) as usage:
                code = job.wait()
        spark_total = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"the ETL job failed ({code}):\n{log.read_text(errors='replace')[-4000:]}")
        summary = json.loads(out.read_text())
    spark_features = sum(v for k, v in summary["seconds"].items() if k != "database_load")

    started = time.perf_counter()
    tx = raw_to_pandas(raw, keys, settings.token_key())
    label_frame = pd.DataFrame([row for k in labels for row in decode_jsonl_gz(raw.get_bytes(k))])
    label_frame["is_fraud"] = label_frame["is_fraud"].astype(bool)
    expected = pandas_features(tx, label_frame).set_index("trans_num")
    pandas_time = time.perf_counter() - started

    sample = expected.sample(min(2_000, len(expected)), random_state=0)
    with get_engine(settings).connect() as connection:
        got = (
            pd.read_sql(
                text("SELECT trans_num, values FROM transaction_features WHERE trans_num = ANY(:ids)"),
                connection,
                params={"ids": list(sample.index)},
            )
            .set_index("trans_num")
            .loc[sample.index]
        )
    spark_values = pd.DataFrame(got["values"].tolist(), index=got.index, columns=list(FEATURE_NAMES))
    names = list(FEATURE_NAMES)
    disagree = int((~np.isclose(spark_values[names], sample[names], rtol=1e-6, atol=1e-6)).sum())
    return {
        "rows": summary["rows_in"],
        "seconds": spark_total,  # raw -> loaded: the whole job, the Spark session's start included
        "peak_memory_gib": usage.peak_rss / GIB,
        "peak_memory_by_process_gib": {kind: rss / GIB for kind, rss in usage.peak_by_process.items()},
        "cpu_seconds": summary["cpu_seconds"],  # the job's process tree: driver + JVM + Python workers
        "database_cpu_seconds": usage.cpu_seconds["database"],  # PostgreSQL's processes; None if not embedded
        "spark_features": spark_features,
        "load": summary["seconds"]["database_load"],
        "pandas": pandas_time,
        "disagreeing_values": disagree,
        "phases": summary["seconds"],
    }


Row = tuple[str, ...]  # a line of the table: COLUMNS
COLUMNS = ("benchmark", "rows", "baseline", "baseline s", "measured s", "ratio")


@dataclass(frozen=True)
class Sizes:
    """How much each phase runs: `make bench`'s sizes by default; the tests pass tiny ones (their figures say
    nothing, only that every figure is there)."""

    load_rows: int = 10_000
    etl_cards: int = 17_000  # about 1.1 million transactions over etl_days
    etl_days: int = 30
    scoring_rows: int = 100_000
    api_rows: int = 100_000
    api_load: dict[str, Any] = field(default_factory=dict)  # bench.api.bench_api's load arguments; {}: its own


@dataclass
class Workspace:
    """The run's own FRAUD_HOME; its embedded PostgreSQL is started by the first phase that needs it."""

    home: Path
    sizes: Sizes = field(default_factory=Sizes)
    _engine: Engine | None = None

    @cached_property
    def settings(self) -> Settings:
        return Settings(home=self.home)

    def database(self) -> Engine:
        """The migrated database, started on first use."""
        if self._engine is None:
            from fraud.db.engine import get_engine
            from fraud.db.migrate import upgrade

            self._engine = get_engine(self.settings)
            upgrade(self._engine)
        return self._engine

    def close(self) -> None:
        from fraud.db.engine import stop_embedded

        if self._engine is not None:
            self._engine.dispose()
            stop_embedded(self.settings.pg_dir)
        shutil.rmtree(self.home, ignore_errors=True)  # about 2 GB of database and raw zone after a full run


@dataclass
class Outcome:
    """A phase's lines of the table and its raw figures (for --json)."""

    rows: list[Row]
    figures: dict[str, Any] = field(default_factory=dict)


def phase_load(work: Workspace) -> Outcome:
    rows = work.sizes.load_rows
    base, measured = bench_load(work.database(), rows)
    line = ("bulk load (COPY + ON CONFLICT)", f"{rows:,}", "row-by-row ORM merge", f"{base:.2f}", f"{measured:.2f}")
    return Outcome(
        [(*line, f"{base / measured:.1f}x")],
        {"rows": rows, "row_by_row_seconds": base, "copy_seconds": measured},
    )


def phase_simulator(work: Workspace) -> Outcome:
    naive, vectorized, million_rows, million_time = bench_simulator()
    rows = [
        (
            "simulator (per transaction)",
            "110k vs 5k",
            "row-by-row Faker",
            f"{naive * 1e6:.0f} µs/tx",
            f"{vectorized * 1e6:.1f} µs/tx",
            f"{naive / vectorized:.0f}x",
        ),
        (
            "simulator, one million transactions",
            f"{million_rows:,}",
            "row-by-row Faker (extrapolated)",
            f"{naive * million_rows:.0f}",
            f"{million_time:.1f}",
            f"{naive * million_rows / million_time:.0f}x",
        ),
    ]
    figures = {
        "naive_seconds_per_transaction": naive,
        "vectorized_seconds_per_transaction": vectorized,
        "million_rows": million_rows,
        "million_seconds": million_time,
    }
    return Outcome(rows, figures)


def phase_etl(work: Workspace) -> Outcome:
    work.database()  # the Spark job loads into the migrated database
    etl = bench_etl(work.settings, cards=work.sizes.etl_cards, days=work.sizes.etl_days)
    by_process = ", ".join(f"{kind} {gib:.2f}" for kind, gib in etl["peak_memory_by_process_gib"].items())
    database_cpu = "" if etl["database_cpu_seconds"] is None else f", PostgreSQL {etl['database_cpu_seconds']:.0f} s"
    console.print(
        f"ETL phases (s): {etl['phases']}; values disagreeing with pandas on a 2,000-row sample: "
        f"{etl['disagreeing_values']}; peak memory (summed RSS) {etl['peak_memory_gib']:.2f} GiB ({by_process}); "
        f"CPU: job {etl['cpu_seconds']:.0f} s{database_cpu}"
    )
    rows = [
        (
            "ETL features (Spark job)",
            f"{etl['rows']:,}",
            "pandas groupby/rolling",
            f"{etl['pandas']:.1f}",
            f"{etl['spark_features']:.1f}",
            f"{etl['pandas'] / etl['spark_features']:.1f}x",
        ),
        (
            "ETL raw -> features -> loaded in PostgreSQL",
            f"{etl['rows']:,}",
            "(goal: 90 s)",
            "",
            f"{etl['seconds']:.1f}",
            f"{etl['rows'] / etl['seconds']:,.0f} rows/s",
        ),
    ]
    return Outcome(rows, etl)


def phase_scoring(work: Workspace) -> Outcome:
    from bench.scoring import run

    # batch DB → LiteRT → fraud_score vs Keras
    rows, figures = run(console, work.settings, work.database(), rows=work.sizes.scoring_rows)
    return Outcome(rows, figures)


def phase_api(work: Workspace) -> Outcome:
    from bench.api import run

    # steady 200/s open loop, saturation, step costs
    rows, figures = run(console, work.settings, work.database(), rows=work.sizes.api_rows, **work.sizes.api_load)
    return Outcome(rows, figures)


def phase_training(work: Workspace) -> Outcome:
    from bench.training import run

    return Outcome(run(console))  # NN vs baselines on 7/7/7 days; fit time on ~1M rows


def phase_robustness(work: Workspace) -> Outcome:
    from bench.robustness import run

    return Outcome(run(console))  # NN vs baselines on 3 worlds x label delays 2/7/30 d (~15-20 min)


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    run: Callable[[Workspace], Outcome]


PHASES = (
    Phase("load", "bulk load, COPY vs row-by-row ORM", phase_load),
    Phase("simulator", "simulator, vectorized vs naive Faker", phase_simulator),
    Phase("etl", "ETL, Spark job vs pandas on one million simulated transactions (a few minutes)", phase_etl),
    Phase("scoring", "batch scoring, LiteRT vs Keras", phase_scoring),
    Phase("api", "real-time API: 200 requests/s for 60 s, saturation steps, each step's cost (3-4 minutes)", phase_api),
    Phase("training", "training, network vs baselines on ~1 million transactions", phase_training),
    Phase("robustness", "robustness, 3 worlds x 3 label delays (15-20 minutes)", phase_robustness),
)


def selected_phases(only: str | None, phases: tuple[Phase, ...]) -> list[Phase]:
    """The phases named in `only` (comma-separated), in the run's order; all when None. ValueError on a name
    that is not a phase, listing the valid ones."""
    if only is None:
        return list(phases)
    names = {name.strip() for name in only.split(",") if name.strip()}
    unknown = sorted(names - {phase.name for phase in phases})
    valid = ", ".join(phase.name for phase in phases)
    if unknown:
        raise ValueError(f"unknown phase {', '.join(unknown)}; valid phases: {valid}")
    if not names:
        raise ValueError(f"no phase named; valid phases: {valid}")
    return [phase for phase in phases if phase.name in names]


def run_phases(phases: list[Phase], work: Workspace, results: dict[str, dict[str, Any]]) -> None:
    """Each phase with a line when it starts and one when it ends; its outcome into `results` under its name (so
    a failing phase leaves the earlier ones' figures)."""
    for number, phase in enumerate(phases, 1):
        console.print(f"[bold][{number}/{len(phases)}] {phase.name}[/]: {phase.title}")
        started = time.perf_counter()
        outcome = phase.run(work)
        seconds = time.perf_counter() - started
        console.print(f"[{number}/{len(phases)}] {phase.name} done in {seconds:.0f} s")
        reserved = {"phase_seconds", "table"} & set(outcome.figures)
        assert not reserved, f"{phase.name}'s figures use the report's own keys {reserved}"
        results[phase.name] = {
            "phase_seconds": round(seconds, 1),
            "table": [dict(zip(COLUMNS, row, strict=True)) for row in outcome.rows],
            **outcome.figures,
        }


def results_table(results: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="fraud-platform benchmarks (ratio = baseline time / measured time; > 1 is faster)")
    for column in COLUMNS:
        table.add_column(column)
    for result in results.values():
        for row in result["table"]:
            table.add_row(*row.values())
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; `--help` prints them and the phases, then exits before any work."""
    phases = "\n".join(f"  {phase.name:<11} {phase.title}" for phase in PHASES)
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        epilog=f"phases, in the order they run:\n{phases}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = ",".join(phase.name for phase in PHASES)
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated phases to run (default: all of {names})")
    parser.add_argument(
        "--json", metavar="FILE", help="also write each phase's figures (and table rows, duration) as JSON"
    )
    args = parser.parse_args(argv)
    try:
        args.phases = selected_phases(args.only, PHASES)
    except ValueError as error:
        parser.error(str(error))  # exits 2 before any work
    return args


def main(argv: list[str] | None = None, sizes: Sizes | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    home.chmod(0o755)
    os.environ["FRAUD_HOME"] = str(home)  # the benchmark's own world; never the user's data
    work = Workspace(home, sizes or Sizes())
    started = datetime.now(UTC)
    results: dict[str, dict[str, Any]] = {}
    try:
        run_phases(args.phases, work, results)
    finally:
        work.close()
        if results:
            console.print(results_table(results))
        if args.json:
            report = {
                "started": started.isoformat(timespec="seconds"),
                "complete": len(results) == len(args.phases),
                "columns": list(COLUMNS),
                "phases": results,
            }
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
            console.print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
