"""A second, independent transaction generator: the simulator of the open "Reproducible Machine Learning for
Credit Card Fraud Detection — Practical Handbook" (Le Borgne, Siblini, Lebichot, Bontempi; chapter 3,
"Transaction data simulator"), implemented here from its published description with NumPy, so the network can
be judged on a world that is not our own simulator (fraud/ingest/simulate.py) and was not tuned on.

The handbook's world:
- customers: a home at (x, y) uniform on a 100 x 100 grid, a mean amount uniform(5, 100) with std mean / 2,
  a mean number of transactions per day uniform(0, 4);
- terminals: uniform on the same grid; a customer uses the terminals within `radius` (5) of home (none: the
  customer makes no transaction);
- each day a customer makes Poisson(mean) transactions, each at a time drawn normal(noon, 20,000 s) and kept
  only inside the day (the handbook drops the others), an amount normal(mean, std) (a negative one redrawn
  uniform(0, 2 * mean)), at one of the customer's terminals chosen uniformly;
- fraud scenario 1: every transaction above 220 is fraud;
- scenario 2: each day 2 random terminals are compromised: all their transactions on that day and the next 27
  (28 days) are fraud;
- scenario 3: each day 3 random customers are compromised: a third of their transactions on that day and the
  next 13 (14 days), drawn at random, get 5 times their amount and are fraud.
Later scenarios overwrite the scenario of earlier ones, as in the handbook (a transaction can be picked by two
overlapping scenario-3 compromises, and then its amount is multiplied twice).

Deterministic for a seed (one NumPy generator drawn in a fixed order). The output is the project's raw Sparkov
schema (fraud/core/schema.py RAW_COLUMNS) with merchant = terminal id and a Luhn-valid 16-digit card number per
customer; the holder and merchant-location fields are empty strings, as in many real exports. The labels
frame is the raw label schema (trans_num, is_fraud, labelled_at = event time + the label delay) plus the
scenario, like the project simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from fraud.core.schema import HOLDER_COLUMNS, RAW_COLUMNS
from fraud.ingest.simulate import GOLDEN, format_times, hex32, midnight, mix64

GRID = 100.0
RADIUS = 5.0
MEAN_AMOUNT = (5.0, 100.0)
MEAN_TRANSACTIONS_PER_DAY = (0.0, 4.0)
TIME_STD_SECONDS = 20_000.0
FRAUD_AMOUNT = 220.0  # scenario 1
COMPROMISED_TERMINALS_PER_DAY, TERMINAL_COMPROMISE_DAYS = 2, 28  # scenario 2
COMPROMISED_CUSTOMERS_PER_DAY, CUSTOMER_COMPROMISE_DAYS, CUSTOMER_FRAUD_SHARE, CUSTOMER_FRAUD_FACTOR = 3, 14, 1 / 3, 5.0
SCENARIOS = ("", "amount_over_220", "compromised_terminal", "compromised_customer")  # index = handbook scenario
# raw fields the handbook has no notion of: left empty, as real exports often have them
EMPTY_COLUMNS = (
    "category",
    *HOLDER_COLUMNS,
    "merch_lat",
    "merch_long",
)
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class HandbookWorld:
    customers: pd.DataFrame  # customer (index), cc_num, x, y, mean_amount, std_amount, mean_per_day, terminals
    terminals: pd.DataFrame  # merchant (the terminal id), x, y
    transactions: pd.DataFrame = field(repr=False)  # RAW_COLUMNS, in time order; no label
    labels: pd.DataFrame = field(repr=False)  # trans_num, is_fraud, labelled_at, scenario
    compromised_terminals: pd.DataFrame = field(repr=False)  # day (0-based), merchant: fraud on days [day, day + 28)
    compromised_customers: pd.DataFrame = field(repr=False)  # day (0-based), cc_num: fraud on days [day, day + 14)


def handbook_world(
    n_customers: int = 5_000,
    n_terminals: int = 10_000,
    days: int = 183,
    start: date = date(2018, 4, 1),
    seed: int = 0,
    label_delay_days: float = 7.0,
    radius: float = RADIUS,
) -> HandbookWorld:
    """The handbook's world (its defaults: 5,000 customers, 10,000 terminals, 183 days from 2018-04-01)."""
    if n_customers < COMPROMISED_CUSTOMERS_PER_DAY or n_terminals < COMPROMISED_TERMINALS_PER_DAY or days < 1:
        raise ValueError(
            f"need at least {COMPROMISED_CUSTOMERS_PER_DAY} customers, "
            f"{COMPROMISED_TERMINALS_PER_DAY} terminals and 1 day"
        )
    rng = np.random.default_rng(seed)
    home = rng.uniform(0, GRID, (n_customers, 2))
    mean_amount = rng.uniform(*MEAN_AMOUNT, n_customers)
    std_amount = mean_amount / 2
    per_day = rng.uniform(*MEAN_TRANSACTIONS_PER_DAY, n_customers)
    where = rng.uniform(0, GRID, (n_terminals, 2))
    indptr, reachable = _terminals_within(home, where, radius)
    degree = np.diff(indptr)

    # every customer-day's Poisson count, then one row per transaction (day-major, then customer)
    counts = rng.poisson(np.broadcast_to(per_day, (days, n_customers))).ravel()
    customer = np.repeat(np.tile(np.arange(n_customers), days), counts)
    day = np.repeat(np.repeat(np.arange(days), n_customers), counts)
    n = len(customer)
    seconds = rng.normal(DAY_SECONDS / 2, TIME_STD_SECONDS, n).astype(np.int64)  # int(): truncation, as the handbook
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    redraw = rng.uniform(0, 2 * mean_amount[customer])
    amount = np.round(np.where(amount < 0, redraw, amount), 2)
    pick = rng.random(n)
    keep = (seconds > 0) & (seconds < DAY_SECONDS) & (degree[customer] > 0)
    customer, day, seconds, amount, pick = customer[keep], day[keep], seconds[keep], amount[keep], pick[keep]
    terminal = reachable[indptr[customer] + (pick * degree[customer]).astype(np.int64)]
    order = np.lexsort((customer, seconds, day))  # time order (ties: customer)
    customer, day, seconds, amount, terminal = (
        customer[order],
        day[order],
        seconds[order],
        amount[order],
        terminal[order],
    )
    n = len(customer)

    scenario = np.where(amount > FRAUD_AMOUNT, 1, 0)  # scenario 1
    # scenario 2: a terminals x days table of "compromised"
    hacked = np.zeros((n_terminals, days + TERMINAL_COMPROMISE_DAYS), dtype=bool)
    terminal_rows = []
    for d in range(days):
        chosen = rng.choice(n_terminals, COMPROMISED_TERMINALS_PER_DAY, replace=False)
        hacked[chosen, d : d + TERMINAL_COMPROMISE_DAYS] = True
        terminal_rows += [(d, t) for t in chosen]
    scenario = np.where(hacked[terminal, day], 2, scenario)
    # scenario 3: a third of each compromised customer's transactions in the next 14 days, amount x 5
    by_customer = np.argsort(customer, kind="stable")  # each customer's transactions, in time order
    bounds = np.searchsorted(customer[by_customer], np.arange(n_customers + 1))
    customer_rows = []
    for d in range(days):
        chosen = rng.choice(n_customers, COMPROMISED_CUSTOMERS_PER_DAY, replace=False)
        customer_rows += [(d, c) for c in chosen]
        rows = np.concatenate([by_customer[bounds[c] : bounds[c + 1]] for c in chosen])
        rows = rows[(day[rows] >= d) & (day[rows] < d + CUSTOMER_COMPROMISE_DAYS)]
        hit = rng.choice(rows, int(len(rows) * CUSTOMER_FRAUD_SHARE), replace=False)
        amount[hit] = np.round(amount[hit] * CUSTOMER_FRAUD_FACTOR, 2)
        scenario[hit] = 3

    cards = card_numbers(n_customers, seed)
    merchants = np.array([f"terminal_{t:05d}" for t in range(n_terminals)], dtype=object)
    unix = midnight(start) + day * DAY_SECONDS + seconds
    first = mix64((np.uint64(seed) << np.uint64(40)) | np.arange(n, dtype=np.uint64))
    with np.errstate(over="ignore"):
        second = mix64(first + GOLDEN)
    trans_num = hex32(first, second)
    transactions = pd.DataFrame(
        {
            "trans_date_trans_time": format_times(unix),
            "cc_num": cards[customer],
            "merchant": merchants[terminal],
            "amt": amount,
            "trans_num": trans_num,
            "unix_time": unix,
            **{column: np.full(n, "", dtype=object) for column in EMPTY_COLUMNS},
        }
    )[list(RAW_COLUMNS)]
    labels = pd.DataFrame(
        {
            "trans_num": trans_num,
            "is_fraud": (scenario > 0).astype(int),
            "labelled_at": format_times(unix + int(round(label_delay_days * DAY_SECONDS))),
            "scenario": np.array(SCENARIOS, dtype=object)[scenario],
        }
    )
    customers = pd.DataFrame(
        {
            "cc_num": cards,
            "x": home[:, 0],
            "y": home[:, 1],
            "mean_amount": mean_amount,
            "std_amount": std_amount,
            "mean_per_day": per_day,
            "terminals": degree,
        }
    )
    terminals = pd.DataFrame({"merchant": merchants, "x": where[:, 0], "y": where[:, 1]})
    compromised_terminals = pd.DataFrame(terminal_rows, columns=["day", "terminal"])
    compromised_customers = pd.DataFrame(customer_rows, columns=["day", "customer"])
    return HandbookWorld(
        customers,
        terminals,
        transactions,
        labels,
        compromised_terminals.assign(merchant=merchants[compromised_terminals["terminal"].to_numpy(dtype=np.int64)])[
            ["day", "merchant"]
        ],
        compromised_customers.assign(cc_num=cards[compromised_customers["customer"].to_numpy(dtype=np.int64)])[
            ["day", "cc_num"]
        ],
    )


def _terminals_within(
    home: np.ndarray, where: np.ndarray, radius: float, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's terminals at distance < radius, as CSR (indptr over customers, terminal indices)."""
    counts, indices = [], []
    for lo in range(0, len(home), chunk):
        d2 = ((home[lo : lo + chunk, None, :] - where[None, :, :]) ** 2).sum(axis=2)
        rows, cols = np.nonzero(d2 < radius * radius)  # row-major: grouped by customer, terminals in index order
        counts.append(np.bincount(rows, minlength=len(d2)))
        indices.append(cols)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]) if counts else np.zeros(1, dtype=np.int64)
    return indptr.astype(np.int64), (np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)).astype(
        np.int64
    )


CARD_PREFIX = "4"  # Visa-like
CARD_MULTIPLIER = 7_919_007_713  # odd and not a multiple of 5: i -> (a * i + b) mod 10**14 is one-to-one


def card_numbers(n: int, seed: int) -> np.ndarray:
    """n distinct Luhn-valid 16-digit card numbers (strings): the prefix, 14 digits that are a one-to-one
    function of the customer index (so distinct by construction), and the Luhn check digit."""
    if n > 10**7:
        raise ValueError("at most 10 million customers")
    offset = int(np.random.default_rng([seed, 7]).integers(0, 10**14))
    body = (np.arange(n, dtype=np.int64) * CARD_MULTIPLIER + offset) % 10**14
    digits = np.concatenate(
        [np.full((n, 1), int(CARD_PREFIX)), body[:, None] // 10 ** np.arange(13, -1, -1) % 10], axis=1
    )
    # Luhn: from the right of the payload (the check digit will sit right of it), every other digit doubled
    doubled = digits[:, ::-1].copy()
    doubled[:, 0::2] *= 2
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    check = (10 - doubled.sum(axis=1) % 10) % 10
    number = np.concatenate([digits, check[:, None]], axis=1)
    return (number + 48).astype(np.uint8).view("S16").reshape(-1).astype("U16").astype(object)
