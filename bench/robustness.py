"""Robustness table (issue 18): the network against every baseline on several worlds and label delays, not only
on the one simulator world it was tuned on.

Worlds (`worlds(size)`):
  a  the project's simulator (fraud/ingest/simulate.py) with its default fraud mix, in independent small worlds (as
     bench/training.py: the compromised-merchant fraud grows with the cards per merchant);
  b  the same simulator with other seeds and another fraud mix, heavy on card testing and compromised merchants;
  c  an independent generator: the Fraud Detection Handbook's simulator (bench/worlds.py), whose raw rows have no
     holder or merchant-location fields.
For each world and each label delay (2, 7, 30 days): the transactions of warm-up + train + delay + test days (the
warm-up: at least 30 days, and long enough that labels have been arriving for 30 days when training starts, i.e.
max(30, delay + 30); see WorldSpec), the labels known `delay` days after each transaction, the pandas
reference features (bench/pandas_features.py), and the protocol Protocol(train_days=7, delay_days=delay,
test_days=7) after the warm-up, through fraud.model.network.train
(the network and every baseline of fraud.model.baselines.BASELINES on the same split). Collected per cell: each model's
average precision (AP) and ROC AUC, and the test frauds. The goal: the network at or above the best baseline in
every cell, and its AP over the random forest's at least 1.05 on average over the cells.

    .venv/bin/python -m bench.robustness [--worlds a,b,c] [--delays 2,7,30] [--cache DIR] [--json FILE] [--quick]

The feature matrices take seconds to minutes per cell with pandas: with --cache DIR each cell's LabelledData is
kept on disk, keyed by the world's parameters, the delay, the size, FEATURE_VERSION and a hash of the feature
and generator sources, so re-runs while the model changes only train.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.model.evaluation import LabelledData, Protocol

START = date(2026, 1, 1)
DELAYS = (2, 7, 30)
GOAL_FOREST_RATIO = 1.05
QUICK_EPOCHS = 3  # --quick trains the configured network for this many epochs at most
FOREST = "random_forest"
NUMERIC_RAW = ("amt", "lat", "long", "merch_lat", "merch_long", "city_pop")
HEAVY_MIX = (
    ("card_testing", 0.40),
    ("account_takeover", 0.10),
    ("compromised_merchant", 0.45),
    ("large_outlier", 0.05),
)
# what a cached cell depends on besides its parameters: the features and the generators
SOURCES = (
    "bench/pandas_features.py",
    "fraud/features/catalog.py",
    "fraud/features/rows.py",
    "bench/worlds.py",
    "fraud/ingest/simulate.py",
)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WorldSpec:
    name: str
    description: str
    generator: str  # "simulator" (fraud/ingest/simulate.py) or "handbook" (bench/worlds.py)
    seed: int
    customers: int  # per copy
    copies: int = 1  # simulator: independent worlds with seeds seed, seed + 1, ...
    terminals: int = 0  # handbook
    fraud_rate: float = 0.0068  # simulator
    scenario_share: tuple[tuple[str, float], ...] | None = None  # simulator: None = SCENARIO_SHARE
    # history before the train window: at least `min_warmup_days` (the card windows fill up) and long enough that
    # labels have been arriving for `labels_before_train` days when training starts (a world starts at day 0 with no
    # labels: with a 30-day delay and a fixed warm-up the train window would see no label-based feature but zeros,
    # while the test window sees them, which a network's normalisation does not survive)
    min_warmup_days: int = 30
    labels_before_train: int = 30
    train_days: int = 7
    test_days: int = 7
    size: str = "full"

    def warmup_days(self, delay: int) -> int:
        return max(self.min_warmup_days, delay + self.labels_before_train)

    def days(self, delay: int) -> int:
        return self.warmup_days(delay) + self.train_days + delay + self.test_days

    def protocol(self, delay: int) -> Protocol:
        return Protocol(
            train_start=START + timedelta(days=self.warmup_days(delay)),
            train_days=self.train_days,
            delay_days=delay,
            test_days=self.test_days,
        )


def worlds(size: str = "full") -> dict[str, WorldSpec]:
    """The worlds of the table. full: about 10,000 transactions a day in each world (70,000 train and test rows,
    a few hundred test frauds per cell); quick: a few hundred a day and 3-day windows, for a smoke test."""
    if size == "full":
        return {
            "a": WorldSpec(
                "a",
                "simulator, default fraud mix (4 worlds x 1,250 cards)",
                "simulator",
                seed=101,
                customers=1_250,
                copies=4,
            ),
            "b": WorldSpec(
                "b",
                "simulator, other seeds, mix heavy on card testing + compromised merchants (4 worlds x 1,250 cards)",
                "simulator",
                seed=201,
                customers=1_250,
                copies=4,
                scenario_share=HEAVY_MIX,
            ),
            "c": WorldSpec(
                "c",
                "Fraud Detection Handbook generator (5,000 customers, 10,000 terminals)",
                "handbook",
                seed=301,
                customers=5_000,
                terminals=10_000,
            ),
        }
    if size == "quick":
        small = dict(min_warmup_days=3, labels_before_train=3, train_days=3, test_days=3, size="quick")
        return {
            "a": WorldSpec(
                "a",
                "simulator, default fraud mix (quick)",
                "simulator",
                seed=101,
                customers=150,
                fraud_rate=0.04,
                **small,
            ),
            "b": WorldSpec(
                "b",
                "simulator, heavy card testing + compromised merchants (quick)",
                "simulator",
                seed=201,
                customers=150,
                fraud_rate=0.04,
                scenario_share=HEAVY_MIX,
                **small,
            ),
            "c": WorldSpec(
                "c",
                "Fraud Detection Handbook generator (quick)",
                "handbook",
                seed=301,
                customers=200,
                terminals=400,
                **small,
            ),
        }
    raise ValueError(f"unknown size {size!r}: full or quick")


def _spec(world: str | WorldSpec, size: str) -> WorldSpec:
    if isinstance(world, WorldSpec):
        return world
    specs = worlds(size)
    if world not in specs:
        raise ValueError(f"unknown world {world!r}: one of {', '.join(specs)}")
    return specs[world]


# --- the rows of a cell ----------------------------------------------------------------------------------------


def _simulator_kwargs(spec: WorldSpec) -> dict:
    """simulate_days' fraud-mix argument, when the world has its own mix."""
    if spec.scenario_share is None:
        return {}
    from fraud.ingest.simulate import simulate_days

    if "scenario_share" not in inspect.signature(simulate_days).parameters:
        raise RuntimeError(
            f"world {spec.name} needs fraud.ingest.simulate.simulate_days(..., scenario_share=...) for its fraud "
            "mix, which this checkout's simulator does not have yet"
        )
    return {"scenario_share": dict(spec.scenario_share)}


def raw_rows(world: str | WorldSpec, delay: float, size: str = "full") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The world's raw transactions (RAW_COLUMNS; trans_num prefixed with the world copy's seed, so copies never
    collide) and labels (trans_num, is_fraud, labelled_at = event time + `delay` days, scenario)."""
    spec = _spec(world, size)
    days = spec.days(int(np.ceil(delay)))
    if spec.generator == "handbook":
        from bench.worlds import handbook_world

        made = handbook_world(spec.customers, spec.terminals, days, START, spec.seed, label_delay_days=delay)
        parts = [(spec.seed, made.transactions, made.labels)]
    elif spec.generator == "simulator":
        from fraud.ingest.simulate import build_world, simulate_days

        kwargs = _simulator_kwargs(spec)
        parts = []
        for copy in range(spec.copies):
            seed = spec.seed + copy
            batches = simulate_days(
                build_world(spec.customers, seed=seed), START, days, spec.fraud_rate, delay, **kwargs
            )
            parts.append(
                (
                    seed,
                    pd.concat([b.transactions for b in batches], ignore_index=True),
                    pd.concat([b.labels for b in batches], ignore_index=True),
                )
            )
    else:
        raise ValueError(f"unknown generator {spec.generator!r}")
    tx = pd.concat([t.assign(trans_num=f"w{seed}-" + t["trans_num"]) for seed, t, _ in parts], ignore_index=True)
    labels = pd.concat([lb.assign(trans_num=f"w{seed}-" + lb["trans_num"]) for seed, _, lb in parts], ignore_index=True)
    return tx, labels


def labelled_data(tx: pd.DataFrame, labels: pd.DataFrame) -> LabelledData:
    """Raw rows and labels -> the pandas reference features and the rows LabelledData wants (as bench/training.py)."""
    from bench.pandas_features import pandas_features
    from fraud.core.privacy import card_token, normalize_card_number

    labels = labels.assign(
        is_fraud=labels["is_fraud"].astype(bool), labelled_at=pd.to_datetime(labels["labelled_at"], utc=True)
    )
    tokens = {card: card_token(normalize_card_number(card), b"bench") for card in tx["cc_num"].unique()}
    # empty raw fields (the handbook world has no holder or merchant location) become NaN, as the ETL reads them
    tx = tx.assign(
        card_token=tx["cc_num"].map(tokens),
        event_time=pd.to_datetime(tx["trans_date_trans_time"], utc=True),
        **{c: pd.to_numeric(tx[c], errors="coerce") for c in NUMERIC_RAW},
    )
    features = pandas_features(tx, labels).set_index("trans_num")
    rows = tx[["trans_num", "event_time", "card_token"]].merge(
        labels[["trans_num", "is_fraud", "labelled_at"]], on="trans_num"
    )
    return LabelledData.of(rows, features.loc[rows["trans_num"]].to_numpy(dtype=np.float32))


def cache_key(spec: WorldSpec, delay: int) -> str:
    """The cell's file name: world, delay, size, feature version and a hash of its parameters and the sources."""
    from fraud.features.catalog import FEATURE_VERSION

    digest = hashlib.sha256(
        json.dumps(
            {"world": asdict(spec), "delay": delay, "start": START.isoformat(), "features": FEATURE_VERSION},
            sort_keys=True,
            default=str,
        ).encode()
    )
    for source in SOURCES:
        digest.update((ROOT / source).read_bytes())
    return f"{spec.name}-delay{delay}-{spec.size}-{FEATURE_VERSION}-{digest.hexdigest()[:16]}"


def cell_data(world: str | WorldSpec, delay: int, size: str = "full", cache: str | Path | None = None) -> LabelledData:
    """The labelled feature matrix of one (world, delay) cell, from `cache` (a folder) when it is there, else
    built and, with `cache`, written there. `world`: a name of `worlds(size)` or a WorldSpec."""
    spec = _spec(world, size)
    folder = Path(cache) / cache_key(spec, delay) if cache else None
    if folder is not None and (folder / "rows.parquet").exists():
        return LabelledData(pd.read_parquet(folder / "rows.parquet"), np.load(folder / "x.npy"))
    data = labelled_data(*raw_rows(spec, delay))
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, write in (("x.npy", lambda p: np.save(p, data.x)), ("rows.parquet", data.rows.to_parquet)):
            partial = (
                folder / f".{name}.{os.getpid()}.tmp"
            )  # written whole, then renamed; rows last: the cell is complete
            with open(partial, "wb") as handle:
                write(handle)
            os.replace(partial, folder / name)
    return data


# --- the table -------------------------------------------------------------------------------------------------


def run_cell(
    world: str | WorldSpec, delay: int, size: str = "full", cache: str | Path | None = None, config=None
) -> dict:
    """Train the network and the baselines on one cell; its figures (JSON-ready)."""
    from fraud.model.evaluation import best_baseline
    from fraud.model.network import NAME, TrainingConfig, train

    spec = _spec(world, size)
    started = time.perf_counter()
    data = cell_data(spec, delay, size, cache)
    data_seconds = time.perf_counter() - started
    started = time.perf_counter()
    trained = train(data, spec.protocol(delay), config or TrainingConfig())
    train_seconds = time.perf_counter() - started
    meta = trained.metadata
    models = {
        name: {"average_precision": r.metrics["average_precision"], "roc_auc": r.metrics["roc_auc"]}
        for name, r in trained.results.items()
    }
    aps = {name: m["average_precision"] for name, m in models.items()}
    best = best_baseline(models, NAME)
    network = aps.get(NAME)

    def ratio(other: str | None) -> float | None:
        return network / aps[other] if network is not None and other and aps.get(other) else None

    return {
        "world": spec.name,
        "description": spec.description,
        "delay_days": delay,
        "rows": len(data),
        "train_rows": meta["training_window"]["rows"],
        "train_frauds": meta["training_window"]["frauds"],
        "test_rows": meta["test_window"]["rows"],
        "test_frauds": meta["test_window"]["frauds"],
        "excluded_known_compromised": meta["test_window"]["excluded_known_compromised"],
        "epochs": meta["epochs_run"],
        "models": models,
        "best_baseline": best,
        "network_over_best": ratio(best),
        "network_over_forest": ratio(FOREST if FOREST in aps else None),
        "seconds": {"data": round(data_seconds, 1), "train": round(train_seconds, 1)},
    }


def robustness_table(
    world_names: tuple[str, ...] = ("a", "b", "c"),
    delays: tuple[int, ...] = DELAYS,
    size: str = "full",
    cache: str | Path | None = None,
    config=None,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """One `run_cell` per (world, delay), worlds outermost."""
    cells = []
    for name in world_names:
        for delay in delays:
            cells.append(run_cell(name, delay, size, cache, config))
            if progress is not None:
                progress(cells[-1])
    return cells


def summarize(cells: list[dict]) -> dict:
    at_or_above = [c for c in cells if c["network_over_best"] is not None and c["network_over_best"] >= 1.0]
    forest = [c["network_over_forest"] for c in cells if c["network_over_forest"] is not None]
    mean_forest = float(np.mean(forest)) if forest and len(forest) == len(cells) else None
    return {
        "cells": len(cells),
        "network_at_or_above_best": len(at_or_above),
        "mean_network_over_forest": mean_forest,
        "goal_forest_ratio": GOAL_FOREST_RATIO,
        "forest_present": bool(forest),
        "goal_met": bool(cells)
        and len(at_or_above) == len(cells)
        and mean_forest is not None
        and mean_forest >= GOAL_FOREST_RATIO,
    }


def _model_names(cells: list[dict]) -> list[str]:
    names: list[str] = []
    for cell in cells:
        names += [n for n in cell["models"] if n not in names and n != "random"]
    return names


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(cells: list[dict]):
    """A rich Table: one row per (world, delay), each model's AP, the best baseline and the network's ratios."""
    from rich.table import Table

    names = _model_names(cells)
    out = Table(title="robustness: average precision per world and label delay (7-day train and test windows)")
    for column in (
        "world",
        "delay d",
        "test rows",
        "test frauds",
        *(f"{n.replace('_', ' ')} AP" for n in names),
        "NN AUC",
        "best baseline",
        "NN / best",
        "NN / forest",
    ):
        out.add_column(column)
    for c in cells:
        out.add_row(
            c["world"],
            str(c["delay_days"]),
            f"{c['test_rows']:,}",
            f"{c['test_frauds']:,}",
            *(_fmt(c["models"].get(n, {}).get("average_precision")) for n in names),
            _fmt(c["models"].get("neural_network", {}).get("roc_auc")),
            c["best_baseline"] or "-",
            _fmt(c["network_over_best"], 3),
            _fmt(c["network_over_forest"], 3),
        )
    return out


def summary_lines(cells: list[dict], summary: dict) -> list[str]:
    worlds_seen = {c["world"]: c["description"] for c in cells}
    lines = [f"  {name}: {text}" for name, text in worlds_seen.items()]
    lines.append(
        f"network at or above the best baseline in {summary['network_at_or_above_best']} of {summary['cells']} cells"
    )
    if summary["mean_network_over_forest"] is not None:
        lines.append(
            f"mean network / random forest AP ratio: {summary['mean_network_over_forest']:.3f} "
            f"(goal >= {GOAL_FOREST_RATIO})"
        )
    else:
        lines.append(
            f"mean network / random forest AP ratio: n/a (no {FOREST} baseline in fraud.model.baselines.BASELINES)"
        )
    lines.append(
        "goal (network >= best baseline in every cell and mean network / forest >= "
        f"{GOAL_FOREST_RATIO}): {'MET' if summary['goal_met'] else 'NOT met'}"
    )
    return lines


def cell_line(c: dict) -> str:
    aps = ", ".join(f"{n} {_fmt(m['average_precision'])}" for n, m in c["models"].items())
    return (
        f"world {c['world']} delay {c['delay_days']} d: {c['train_rows']:,} train rows ({c['train_frauds']:,} frauds), "
        f"{c['test_rows']:,} test rows ({c['test_frauds']:,} frauds), {c['epochs']} epochs; AP {aps}; "
        f"seconds: data {c['seconds']['data']}, train {c['seconds']['train']}"
    )


def run(
    console,
    cache: str | Path | None = None,
    size: str = "full",
    config=None,
    world_names: tuple[str, ...] = ("a", "b", "c"),
    delays: tuple[int, ...] = DELAYS,
) -> list[tuple[str, ...]]:
    """The `make bench` phase: prints each cell and the full table; rows for the bench table (benchmark, rows,
    baseline, baseline figure, measured figure, ratio): one per cell and the summary."""
    from fraud.model.network import NAME

    cells = []
    total = len(world_names) * len(delays)
    for name in world_names:
        for delay in delays:
            with console.status(
                f"robustness: world {name}, label delay {delay} d ({len(cells) + 1} of {total}; about 2 minutes each)"
            ):
                cells.append(run_cell(name, delay, size, cache, config))
            console.print(cell_line(cells[-1]))
    summary = summarize(cells)
    console.print(table(cells))
    for line in summary_lines(cells, summary):
        console.print(line)
    rows = [
        (
            f"robustness: NN AP, world {c['world']}, label delay {c['delay_days']} d",
            f"{c['test_rows']:,} test",
            f"best baseline ({c['best_baseline']})",
            _fmt(c["models"].get(c["best_baseline"], {}).get("average_precision")),
            _fmt(c["models"][NAME]["average_precision"]),
            "-" if c["network_over_best"] is None else f"{c['network_over_best']:.2f}x",
        )
        for c in cells
    ]
    forest = summary["mean_network_over_forest"]
    rows.append(
        (
            "robustness: cells NN >= best baseline; mean NN / forest AP (goal: all, >= 1.05)",
            f"{len(cells)} cells",
            "random forest",
            "-",
            f"{summary['network_at_or_above_best']} of {len(cells)}",
            "-" if forest is None else f"{forest:.2f}x",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.robustness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default="a,b,c", help="comma-separated world names (a, b, c)")
    parser.add_argument("--delays", default=",".join(map(str, DELAYS)), help="comma-separated label delays in days")
    parser.add_argument("--cache", default=None, help="folder for the cells' feature matrices (default: none)")
    parser.add_argument("--json", default=None, help="write the cells and the summary to this file")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny worlds, 3-day windows, at most {QUICK_EPOCHS} epochs: a smoke test"
    )
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(width=200)
    size = "quick" if args.quick else "full"
    names = tuple(n.strip() for n in args.worlds.split(",") if n.strip())
    delays = tuple(int(d) for d in args.delays.split(",") if d.strip())
    for name in names:
        _spec(name, size)  # unknown names fail before any work
    config = None
    if args.quick:  # a smoke test: a few epochs of the configured network
        from dataclasses import replace

        from fraud.model.network import TrainingConfig

        config = replace(TrainingConfig(), epochs=QUICK_EPOCHS)
    started = time.perf_counter()
    cells = robustness_table(names, delays, size, args.cache, config, progress=lambda c: console.print(cell_line(c)))
    summary = summarize(cells)
    console.print(table(cells))
    for line in summary_lines(cells, summary):
        console.print(line)
    console.print(f"{len(cells)} cells in {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"size": size, "cells": cells, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
