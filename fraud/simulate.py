"""Sparkov-style transaction simulator: a Faker-built world of customers and merchants, vectorized spending,
and injected fraud bursts with delayed chargeback labels. Deterministic for a seed.

First pass (issue 3); the scenario catalogue and world persistence are deepened in issue 4.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
from faker import Faker

from fraud.schema import CATEGORIES, RAW_COLUMNS

# Share of spending per category and lognormal (mu, sigma) of the amount, loosely after the Sparkov profiles.
CATEGORY_WEIGHTS = np.array([6, 7, 10, 4, 10, 6, 9, 8, 4, 6, 7, 7, 9, 3], dtype=float)
CATEGORY_AMOUNT = {
    "entertainment": (3.6, 0.8), "food_dining": (3.3, 0.7), "gas_transport": (4.0, 0.4),
    "grocery_net": (3.9, 0.5), "grocery_pos": (4.6, 0.5), "health_fitness": (3.7, 0.6),
    "home": (3.8, 0.8), "kids_pets": (3.6, 0.8), "misc_net": (3.3, 1.0), "misc_pos": (3.4, 0.9),
    "personal_care": (3.2, 0.8), "shopping_net": (3.8, 1.0), "shopping_pos": (3.7, 0.9), "travel": (4.2, 1.2),
}
# Probability of a legitimate purchase starting in each hour of the day (quiet at night).
HOUR_WEIGHTS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7, 7, 6.5, 5.5, 4, 3, 2])
# Account takeover: what fraudsters buy, how much, and when.
FRAUD_CATEGORIES = np.array([CATEGORIES.index(c) for c in ("shopping_net", "misc_net", "grocery_pos", "shopping_pos")])
FRAUD_HOURS = np.array([22, 23, 0, 1, 2, 3])
MERCHANTS_PER_CATEGORY = 40


@dataclass(frozen=True)
class World:
    customers: pd.DataFrame  # one row per card: cc_num and the holder's attributes
    merchants: pd.DataFrame  # merchant, category


@dataclass(frozen=True)
class SimulatedDay:
    day: date
    batch_id: str
    transactions: pd.DataFrame  # RAW_COLUMNS, no label
    labels: pd.DataFrame  # trans_num, is_fraud, labelled_at, scenario


def build_world(n_customers: int, seed: int) -> World:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_customers):
        gender = "F" if rng.random() < 0.52 else "M"
        first = fake.first_name_female() if gender == "F" else fake.first_name_male()
        last = fake.last_name()
        lat, lon, city, _, _ = fake.local_latlng(country_code="US")
        state = fake.state_abbr(include_territories=False)
        rows.append({
            "cc_num": fake.credit_card_number(),
            "first": first, "last": last, "gender": gender,
            "street": fake.street_address(), "city": city, "state": state,
            "zip": fake.zipcode_in_state(state),
            "lat": float(lat), "long": float(lon),
            "city_pop": int(rng.lognormal(9.5, 1.8)) + 50,
            "job": fake.job(),
            "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
            "email": f"{first}.{last}.{i}@example.com".lower(),
        })
    customers = pd.DataFrame(rows).drop_duplicates("cc_num").reset_index(drop=True)
    merchants = pd.DataFrame(
        [{"merchant": f"fraud_{fake.company()}", "category": category}
         for category in CATEGORIES for _ in range(MERCHANTS_PER_CATEGORY)]
    )
    return World(customers=customers, merchants=merchants)


def _trans_nums(seed: int, start: date, count: int) -> list[str]:
    return [hashlib.md5(f"{seed}:{start}:{i}".encode()).hexdigest() for i in range(count)]


def simulate(world: World, start: date, days: int, fraud_rate: float, seed: int, label_delay_days: int = 2) -> list[SimulatedDay]:
    """Transactions for `days` days from `start`, split into one batch per day."""
    rng = np.random.default_rng([seed, start.toordinal(), days])
    customers = world.customers
    n_cards = len(customers)
    t0 = datetime(start.year, start.month, start.day, tzinfo=timezone.utc).timestamp()

    # legitimate spending: per-card daily rate and category taste
    daily_rate = rng.gamma(2.0, 1.0, n_cards)
    taste = rng.dirichlet(CATEGORY_WEIGHTS, n_cards)
    counts = rng.poisson(np.outer(daily_rate, np.ones(days)))  # cards x days
    card_idx = np.repeat(np.repeat(np.arange(n_cards), days), counts.ravel())
    day_idx = np.repeat(np.tile(np.arange(days), n_cards), counts.ravel())
    n_legit = len(card_idx)
    cum = taste[card_idx].cumsum(axis=1)
    category_idx = (rng.random(n_legit)[:, None] > cum).sum(axis=1).clip(0, len(CATEGORIES) - 1)
    hour = rng.choice(24, n_legit, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = day_idx * 86400 + hour * 3600 + rng.integers(0, 3600, n_legit)
    mu = np.array([CATEGORY_AMOUNT[c][0] for c in CATEGORIES])[category_idx]
    sigma = np.array([CATEGORY_AMOUNT[c][1] for c in CATEGORIES])[category_idx]
    amount = np.exp(rng.normal(mu, sigma))
    distance_deg = rng.normal(0, 0.4, (n_legit, 2))
    scenario = np.full(n_legit, "", dtype=object)

    # account takeover bursts: a few compromised cards spend big, online, at night, far from home
    burst_size = 6
    n_compromised = max(1, int(round(fraud_rate * n_legit / burst_size)))
    victims = rng.choice(n_cards, n_compromised, replace=False)
    start_sec = rng.integers(0, max(1, days - 1) * 86400, n_compromised)
    f_card = np.repeat(victims, burst_size)
    f_day_start = np.repeat(start_sec // 86400, burst_size)
    f_offset_days = rng.integers(0, 2, len(f_card))
    f_offset_days = np.minimum(f_day_start + f_offset_days, days - 1) - f_day_start  # bursts stay in the period
    f_hour = rng.choice(FRAUD_HOURS, len(f_card))
    f_seconds = (f_day_start + f_offset_days) * 86400 + f_hour * 3600 + rng.integers(0, 3600, len(f_card))
    f_category = rng.choice(FRAUD_CATEGORIES, len(f_card))
    f_amount = np.exp(rng.normal(6.0, 0.6, len(f_card)))
    # card testing: the first purchase of every burst is a tiny probe
    f_amount[::burst_size] = rng.uniform(1.0, 3.0, n_compromised)
    f_distance = rng.normal(0, 4.0, (len(f_card), 2))

    card = np.concatenate([card_idx, f_card])
    when = np.concatenate([seconds, f_seconds]) + t0
    cat = np.concatenate([category_idx, f_category])
    amt = np.round(np.concatenate([amount, f_amount]), 2)
    dist = np.concatenate([distance_deg, f_distance])
    is_fraud = np.concatenate([np.zeros(n_legit, dtype=int), np.ones(len(f_card), dtype=int)])
    scen = np.concatenate([scenario, np.full(len(f_card), "account_takeover", dtype=object)])

    order = np.argsort(when, kind="stable")
    card, when, cat, amt, dist, is_fraud, scen = (a[order] for a in (card, when, cat, amt, dist, is_fraud, scen))
    holder = customers.iloc[card].reset_index(drop=True)
    categories = np.array(CATEGORIES)[cat]
    merchant_pick = rng.integers(0, MERCHANTS_PER_CATEGORY, len(card))
    merchant_names = world.merchants["merchant"].to_numpy().reshape(len(CATEGORIES), MERCHANTS_PER_CATEGORY)[cat, merchant_pick]
    stamps = pd.to_datetime(when, unit="s", utc=True)

    frame = pd.DataFrame({
        "trans_date_trans_time": stamps.strftime("%Y-%m-%d %H:%M:%S"),
        "cc_num": holder["cc_num"],
        "merchant": merchant_names,
        "category": categories,
        "amt": amt,
        **{c: holder[c] for c in ("first", "last", "gender", "street", "city", "state", "zip", "lat", "long", "city_pop", "job", "dob")},
        "trans_num": _trans_nums(seed, start, len(card)),
        "unix_time": when.astype(np.int64),
        "merch_lat": np.round(holder["lat"].to_numpy() + dist[:, 0], 6),
        "merch_long": np.round(holder["long"].to_numpy() + dist[:, 1], 6),
    })[list(RAW_COLUMNS)]
    labels = pd.DataFrame({
        "trans_num": frame["trans_num"],
        "is_fraud": is_fraud,
        "labelled_at": (stamps + pd.Timedelta(days=label_delay_days)).strftime("%Y-%m-%d %H:%M:%S"),
        "scenario": scen,
    })
    day_of_row = ((when - t0) // 86400).astype(int)
    return [
        SimulatedDay(
            day=start + timedelta(days=d),
            batch_id=f"sim-{seed}-{start + timedelta(days=d):%Y%m%d}",
            transactions=frame[day_of_row == d].reset_index(drop=True),
            labels=labels[day_of_row == d].reset_index(drop=True),
        )
        for d in range(days)
    ]
