"""Sparkov-style card traffic simulator: a persistent Faker-built world of cardholders and merchants,
NumPy-vectorized spending by customer profile, four documented fraud scenarios and delayed chargeback
labels whose timing depends on how each fraud is found out. Deterministic for a seed: any time window can be
generated on its own and agrees with every other window (see docs/simulator.md for the scenarios, the label
timing, their parameters and what a default run produces).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
from faker import Faker

from fraud.core.schema import CATEGORIES, HOLDER_COLUMNS, RAW_COLUMNS

N_CAT = len(CATEGORIES)
CAT = {name: i for i, name in enumerate(CATEGORIES)}

# --- legitimate spending ----------------------------------------------------------------------------
# Share of purchases per category and lognormal (mu, sigma) of the amount, after the Sparkov profiles.
CATEGORY_WEIGHTS = np.array([6, 7, 10, 4, 10, 6, 9, 8, 4, 6, 7, 7, 9, 3], dtype=float)
CATEGORY_AMOUNT = np.array(
    [
        (3.6, 0.8),
        (3.3, 0.7),
        (4.0, 0.4),
        (3.9, 0.5),
        (4.6, 0.5),
        (3.7, 0.6),
        (3.8, 0.8),
        (3.6, 0.8),
        (3.3, 1.0),
        (3.4, 0.9),
        (3.2, 0.8),
        (3.8, 1.0),
        (3.7, 0.9),
        (4.2, 1.2),
    ]
)
# Taste multipliers per profile (age band, gender, city size), applied to CATEGORY_WEIGHTS.
PROFILE_TASTE = {
    "young": {"entertainment": 1.6, "food_dining": 1.4, "shopping_net": 1.6, "misc_net": 1.3, "health_fitness": 0.8},
    "senior": {"health_fitness": 1.7, "grocery_pos": 1.3, "home": 1.3, "shopping_net": 0.6, "entertainment": 0.7},
    "F": {"personal_care": 1.4, "shopping_pos": 1.2, "kids_pets": 1.2},
    "M": {"gas_transport": 1.2, "misc_pos": 1.1},
    "rural": {"gas_transport": 1.5, "grocery_pos": 1.2, "travel": 0.7, "shopping_net": 1.2},
    "city": {"food_dining": 1.3, "entertainment": 1.2, "gas_transport": 0.8},
}
# Probability that a purchase starts in each hour of the day (quiet at night) and volume per weekday (Mon..Sun).
HOUR_WEIGHTS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7, 7, 6.5, 5.5, 4, 3, 2])
WEEKDAY_VOLUME = np.array([0.95, 0.9, 0.95, 1.0, 1.1, 1.25, 1.1])
MEAN_DAILY_TRANSACTIONS = 2.0  # per card: gamma(2, 1) rate
MERCHANTS_PER_CATEGORY = 40
# Card networks as Faker names them, with rough US market shares (all 15-16-digit, Luhn-valid numbers).
CARD_NETWORKS = ("visa16", "mastercard", "amex", "discover")
CARD_NETWORK_SHARE = (0.55, 0.28, 0.12, 0.05)
NEAREST_MERCHANTS = 3  # a purchase goes to one of the card's 3 nearest merchants of the category...
SHOP_NEAR_HOME = 0.85  # ...with this probability, else to any merchant of the category

# --- fraud scenarios (docs/simulator.md) ----------------------------------------------------------------
SCENARIO_SHARE = {"card_testing": 0.25, "account_takeover": 0.35, "compromised_merchant": 0.30, "large_outlier": 0.10}
ONLINE = np.array([CAT["shopping_net"], CAT["misc_net"], CAT["grocery_net"]])
TAKEOVER_CATEGORIES = np.array([CAT["shopping_net"], CAT["misc_net"], CAT["grocery_pos"], CAT["shopping_pos"]])
OUTLIER_CATEGORIES = np.array([CAT["travel"], CAT["shopping_pos"], CAT["home"]])
NIGHT_HOURS = np.array([22, 23, 0, 1, 2, 3, 4])
CARD_TESTING = {
    "probes": (3, 6),
    "probe_amount": (0.5, 3.0),
    "probe_gap_min": (1, 10),
    "cashouts": (1, 3),
    "cashout_amount_lognormal": (6.3, 0.5),
    "cashout_after_h": (1, 6),
}
TAKEOVER = {"events": (3, 8), "span_days": 3, "amount_lognormal": (5.6, 0.7)}
COMPROMISED_MERCHANT = {
    "victim_share": 0.5,
    "frauds_per_victim": (1, 3),
    "delay_days": (7, 28),
    "amount_lognormal": (5.0, 0.8),
}
OUTLIER = {"multiple_of_typical": (8.0, 25.0)}
EVENTS_PER_INSTANCE = {"card_testing": 6.5, "account_takeover": 5.5, "compromised_merchant": 4.0, "large_outlier": 1.0}
LOOKBACK_DAYS = 29  # longest delay of a scenario: plans from this many days back can land in a window

# --- label timing (docs/simulator.md#labels) ----------------------------------------------------------------
# How each scenario is found out: the cardholder notices a stolen card or a hijacked account and reports it
# within days; skimmed cards and one-off outliers surface weeks later, as chargebacks.
LABEL_CHANNEL = {
    "card_testing": "report",
    "account_takeover": "report",
    "compromised_merchant": "chargeback",
    "large_outlier": "chargeback",
}
REPORT_MAX_DAYS = 14.0  # the report delay's gamma tail is cut here: later than that, the chargeback comes first


@dataclass(frozen=True)
class LabelTiming:
    """When fraud labels become known (realistic timing; None in its place means constant timing: every label
    `label_delay_days` after its transaction, none missing). Genuine labels always arrive at `label_delay_days`:
    the maturity after which a transaction nobody disputed counts as genuine."""

    report_mean_days: float = 2.0  # card_testing, account_takeover: gamma(shape 2) delay with this mean
    chargeback_days: tuple[float, float] = (7.0, 45.0)  # compromised_merchant, large_outlier: uniform delay
    unlabelled_share: float = 0.05  # frauds nobody ever reports or charges back: they get no label row at all

    def __post_init__(self) -> None:
        low, high = self.chargeback_days
        if not 0 < self.report_mean_days <= REPORT_MAX_DAYS:
            raise ValueError(f"report_mean_days must be in (0, {REPORT_MAX_DAYS:g}]: {self.report_mean_days}")
        if not 0 <= low <= high:
            raise ValueError(f"chargeback_days must be 0 <= low <= high: {self.chargeback_days}")
        if not 0 <= self.unlabelled_share < 1:
            raise ValueError(f"unlabelled_share must be in [0, 1): {self.unlabelled_share}")
        object.__setattr__(self, "chargeback_days", (float(low), float(high)))  # a list from settings hashes too


@dataclass(frozen=True, eq=False)  # hashed by identity, so per-day results can be cached per world
class World:
    seed: int
    customers: pd.DataFrame  # one row per card: cc_num, holder attributes, profile, daily rate, wealth
    merchants: pd.DataFrame  # merchant, category, lat, long
    taste: np.ndarray = None  # cards x categories: probability of each category
    nearest: np.ndarray = None  # cards x categories x NEAREST_MERCHANTS: merchant row indices


@dataclass(frozen=True)
class Batch:
    batch_id: str
    start: datetime
    end: datetime
    transactions: pd.DataFrame  # RAW_COLUMNS, no label
    labels: pd.DataFrame  # trans_num, is_fraud, labelled_at, scenario; never-labelled frauds have no row
    # the frauds that never get a label (trans_num, scenario): the ground truth a bank never sees
    unlabelled: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"trans_num": [], "scenario": []}, dtype=object)
    )


# --- the world --------------------------------------------------------------------------------------


def build_world(n_customers: int, seed: int) -> World:
    """Cardholders and merchants, made once with Faker (the only slow part) and then reused."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng([seed, 0])
    rows = []
    for i in range(n_customers):
        gender = "F" if rng.random() < 0.52 else "M"
        first = fake.first_name_female() if gender == "F" else fake.first_name_male()
        last = fake.last_name()
        lat, lon, city, _, _ = fake.local_latlng(country_code="US")
        state = fake.state_abbr(include_territories=False, include_freely_associated_states=False)
        rows.append(
            {
                "cc_num": fake.credit_card_number(card_type=rng.choice(CARD_NETWORKS, p=CARD_NETWORK_SHARE)),
                "first": first,
                "last": last,
                "gender": gender,
                "street": fake.street_address(),
                "city": city,
                "state": state,
                "zip": fake.zipcode_in_state(state),
                "lat": round(float(lat) + rng.normal(0, 0.05), 4),
                "long": round(float(lon) + rng.normal(0, 0.05), 4),
                "city_pop": int(rng.lognormal(9.5, 1.8)) + 50,
                "job": fake.job(),
                "dob": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
                "email": f"{first}.{last}.{i}@example.com".lower(),
            }
        )
    customers = pd.DataFrame(rows).drop_duplicates("cc_num").reset_index(drop=True)
    customers["daily_rate"] = rng.gamma(2.0, MEAN_DAILY_TRANSACTIONS / 2.0, len(customers))
    customers["wealth"] = rng.lognormal(0.0, 0.3, len(customers))
    homes = customers[["lat", "long"]].to_numpy()
    anchor = rng.integers(0, len(customers), N_CAT * MERCHANTS_PER_CATEGORY)
    merchants = pd.DataFrame(
        {
            "merchant": [f"fraud_{fake.company()}" for _ in range(N_CAT * MERCHANTS_PER_CATEGORY)],
            "category": np.repeat(np.array(CATEGORIES), MERCHANTS_PER_CATEGORY),
            "lat": np.round(homes[anchor, 0] + rng.normal(0, 0.3, len(anchor)), 6),
            "long": np.round(homes[anchor, 1] + rng.normal(0, 0.3, len(anchor)), 6),
        }
    )
    return _with_derived(World(seed=seed, customers=customers, merchants=merchants))


def profile_of(customers: pd.DataFrame, on: date) -> pd.DataFrame:
    age = (pd.Timestamp(on) - pd.to_datetime(customers["dob"])).dt.days / 365.25
    return pd.DataFrame(
        {
            "age_band": np.select([age < 30, age >= 60], ["young", "senior"], "middle"),
            "gender": customers["gender"],
            "city_size": np.select(
                [customers["city_pop"] < 20_000, customers["city_pop"] >= 500_000], ["rural", "city"], "town"
            ),
        }
    )


def _with_derived(world: World) -> World:
    customers = world.customers
    profile = profile_of(customers, date(2026, 1, 1))
    taste = np.tile(CATEGORY_WEIGHTS, (len(customers), 1))
    for column in ("age_band", "gender", "city_size"):
        for group, multipliers in PROFILE_TASTE.items():
            rows = (profile[column] == group).to_numpy()
            for category, factor in multipliers.items():
                taste[rows, CAT[category]] *= factor
    taste /= taste.sum(axis=1, keepdims=True)
    homes = customers[["lat", "long"]].to_numpy()
    locations = world.merchants[["lat", "long"]].to_numpy().reshape(N_CAT, MERCHANTS_PER_CATEGORY, 2)
    nearest = np.empty((len(customers), N_CAT, NEAREST_MERCHANTS), dtype=np.int64)
    for k in range(N_CAT):
        distance = ((homes[:, None, :] - locations[k][None, :, :]) ** 2).sum(axis=2)
        nearest[:, k, :] = np.argsort(distance, axis=1)[:, :NEAREST_MERCHANTS] + k * MERCHANTS_PER_CATEGORY
    return World(world.seed, customers, world.merchants, taste, nearest)


def world_keys(n_customers: int, seed: int) -> dict[str, str]:
    prefix = f"simulator/world/seed={seed}/customers={n_customers}"
    return {"customers": f"{prefix}/customers.npz", "merchants": f"{prefix}/merchants.npz"}


# The world is stored as NumPy arrays, one per column (text as fixed-width unicode, no pickles): exact for every
# value, so a reloaded world simulates the same bytes as the one built, and readable with NumPy alone, which the
# generator Lambda has (a Parquet engine would not fit in its zip beside pandas, NumPy and Faker).
def frame_bytes(frame: pd.DataFrame) -> bytes:
    if frame.isna().to_numpy().any():
        raise ValueError("a world column holds missing values, which fixed-width text cannot keep apart from text")
    buffer = io.BytesIO()
    columns = {c: frame[c].to_numpy(dtype=str if frame[c].dtype == object else None) for c in frame.columns}
    np.savez_compressed(buffer, **columns)
    return buffer.getvalue()


def frame_from_bytes(data: bytes) -> pd.DataFrame:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return pd.DataFrame({c: arrays[c].astype(object) if arrays[c].dtype.kind == "U" else arrays[c] for c in arrays})


def load_or_build_world(store, n_customers: int, seed: int) -> World:
    """The world lives in the raw zone (it holds card numbers), so successive runs continue the same world."""
    keys = world_keys(n_customers, seed)
    if store.exists(keys["customers"]) and store.exists(keys["merchants"]):
        customers = frame_from_bytes(store.get_bytes(keys["customers"]))
        merchants = frame_from_bytes(store.get_bytes(keys["merchants"]))
        return _with_derived(World(seed, customers, merchants))
    world = build_world(n_customers, seed)
    store.put_bytes(keys["merchants"], frame_bytes(world.merchants))
    store.put_bytes(keys["customers"], frame_bytes(world.customers))  # written last: marks the world complete
    return world


# --- one day of traffic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """Transactions as arrays (before they become Sparkov rows)."""

    card: np.ndarray
    when: np.ndarray  # unix seconds
    merchant: np.ndarray  # row in world.merchants
    amount: np.ndarray
    scenario: np.ndarray  # "" for legitimate
    key: np.ndarray  # uint64 identity of the event (day, kind, index): the trans_num is its hash

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        parts = [p for p in parts if len(p.card)]
        if not parts:
            empty = np.array([], dtype=np.int64)
            return Events(
                empty,
                empty,
                empty,
                np.array([], dtype=float),
                np.array([], dtype=object),
                np.array([], dtype=np.uint64),
            )
        return Events(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("card", "when", "merchant", "amount", "scenario", "key")
            )
        )

    def where(self, mask: np.ndarray) -> Events:
        return Events(
            self.card[mask],
            self.when[mask],
            self.merchant[mask],
            self.amount[mask],
            self.scenario[mask],
            self.key[mask],
        )


def midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _pick_category(rng, taste: np.ndarray) -> np.ndarray:
    cum = taste.cumsum(axis=1)
    return (rng.random(len(taste))[:, None] > cum).sum(axis=1).clip(0, N_CAT - 1)


@lru_cache(maxsize=64)
def visits_day(world: World, day: date) -> tuple[np.ndarray, np.ndarray]:
    """Who bought where on `day` (card and merchant rows). Its own random stream, so the compromised-merchant
    scenario can look at past days without generating their amounts and times."""
    rng = np.random.default_rng([world.seed, 1, day.toordinal()])
    rate = world.customers["daily_rate"].to_numpy() * WEEKDAY_VOLUME[day.weekday()]
    card = np.repeat(np.arange(len(rate)), rng.poisson(rate))
    n = len(card)
    category = _pick_category(rng, world.taste[card])
    near = world.nearest[card, category, rng.integers(0, NEAREST_MERCHANTS, n)]
    anywhere = category * MERCHANTS_PER_CATEGORY + rng.integers(0, MERCHANTS_PER_CATEGORY, n)
    return card, np.where(rng.random(n) < SHOP_NEAR_HOME, near, anywhere)


@lru_cache(maxsize=64)
def legit_day(world: World, day: date) -> Events:
    card, merchant = visits_day(world, day)
    n = len(card)
    rng = np.random.default_rng([world.seed, 4, day.toordinal()])
    hour = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    when = midnight(day) + hour * 3600 + rng.integers(0, 3600, n)
    category = merchant // MERCHANTS_PER_CATEGORY
    amount = (
        np.exp(rng.normal(CATEGORY_AMOUNT[category, 0], CATEGORY_AMOUNT[category, 1]))
        * world.customers["wealth"].to_numpy()[card]
    )
    keys = (np.uint64(day.toordinal()) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    return Events(card, when, merchant, amount, np.full(n, "", dtype=object), keys)


def scenario_mix(scenario_share: Mapping[str, float] | None = None) -> tuple[tuple[str, float], ...]:
    """The fraud mix as (scenario, share) pairs in SCENARIO_SHARE order, normalised to sum to 1 (a scenario left
    out gets none). Hashable, so fraud plans are cached per mix. None is SCENARIO_SHARE."""
    share = dict(SCENARIO_SHARE if scenario_share is None else scenario_share)
    unknown = sorted(set(share) - set(SCENARIO_SHARE))
    if unknown:
        raise ValueError(f"unknown fraud scenarios {unknown}: the scenarios are {list(SCENARIO_SHARE)}")
    values = {name: float(share.get(name, 0.0)) for name in SCENARIO_SHARE}
    if any(not math.isfinite(v) or v < 0 for v in values.values()):
        raise ValueError(f"scenario shares must be finite and non-negative: {share}")
    total = math.fsum(values.values())  # exact: the default shares sum to 1.0, so they stay bit for bit
    if total <= 0:
        raise ValueError(f"scenario shares must sum to more than 0: {share}")
    return tuple((name, value / total) for name, value in values.items())


def _instances(rng, expected_frauds: float, share: float, scenario: str) -> int:
    return int(rng.poisson(expected_frauds * share / EVENTS_PER_INSTANCE[scenario]))


def _random_merchants(rng, categories: np.ndarray) -> np.ndarray:
    return categories * MERCHANTS_PER_CATEGORY + rng.integers(0, MERCHANTS_PER_CATEGORY, len(categories))


def fraud_plan(world: World, day: date, fraud_rate: float, scenario_share: Mapping[str, float] | None = None) -> Events:
    """Fraud that starts on `day` (it may land on later days). Deterministic for (seed, day, rate, mix)."""
    return _fraud_plan(world, day, fraud_rate, scenario_mix(scenario_share))


@lru_cache(maxsize=128)  # consecutive windows look back over the same plan days
def _fraud_plan(world: World, day: date, fraud_rate: float, mix: tuple[tuple[str, float], ...]) -> Events:
    share = dict(mix)
    rng = np.random.default_rng([world.seed, 2, day.toordinal()])
    n_cards = len(world.customers)
    expected = fraud_rate * world.customers["daily_rate"].sum() * WEEKDAY_VOLUME[day.weekday()]
    t0 = midnight(day)
    parts: list[Events] = []

    def events(card, when, merchant, amount, scenario):
        n = len(card)
        keys = (
            FRAUD_KEY
            | (np.uint64(day.toordinal()) << np.uint64(32))
            | (np.uint64(len(parts)) << np.uint64(20))
            | np.arange(n, dtype=np.uint64)
        )
        return Events(
            card.astype(np.int64),
            when.astype(np.int64),
            merchant.astype(np.int64),
            amount,
            np.full(n, scenario, dtype=object),
            keys,
        )

    # card testing: tiny online probes minutes apart, then large cash-out purchases hours later
    for _ in range(_instances(rng, expected, share["card_testing"], "card_testing")):
        card = rng.integers(0, n_cards)
        start = t0 + rng.integers(0, 86400)
        probes = rng.integers(CARD_TESTING["probes"][0], CARD_TESTING["probes"][1] + 1)
        probe_times = start + np.cumsum(
            rng.integers(60 * CARD_TESTING["probe_gap_min"][0], 60 * CARD_TESTING["probe_gap_min"][1], probes)
        )
        cashouts = rng.integers(CARD_TESTING["cashouts"][0], CARD_TESTING["cashouts"][1] + 1)
        cashout_times = probe_times[-1] + rng.integers(
            3600 * CARD_TESTING["cashout_after_h"][0], 3600 * CARD_TESTING["cashout_after_h"][1], cashouts
        )
        amounts = np.concatenate(
            [
                rng.uniform(*CARD_TESTING["probe_amount"], probes),
                np.exp(rng.normal(*CARD_TESTING["cashout_amount_lognormal"], cashouts)),
            ]
        )
        n = probes + cashouts
        parts.append(
            events(
                np.full(n, card),
                np.concatenate([probe_times, cashout_times]),
                _random_merchants(rng, rng.choice(ONLINE, n)),
                amounts,
                "card_testing",
            )
        )

    # account takeover: night-time online / high-risk spending far from home over a few days
    for _ in range(_instances(rng, expected, share["account_takeover"], "account_takeover")):
        card = rng.integers(0, n_cards)
        n = rng.integers(TAKEOVER["events"][0], TAKEOVER["events"][1] + 1)
        days = rng.integers(0, TAKEOVER["span_days"], n)
        when = t0 + days * 86400 + rng.choice(NIGHT_HOURS, n) * 3600 + rng.integers(0, 3600, n)
        parts.append(
            events(
                np.full(n, card),
                when,
                _random_merchants(rng, rng.choice(TAKEOVER_CATEGORIES, n)),
                np.exp(rng.normal(*TAKEOVER["amount_lognormal"], n)),
                "account_takeover",
            )
        )

    # compromised merchant: cards that paid at one merchant today are defrauded one to four weeks later
    instances = _instances(rng, expected, share["compromised_merchant"], "compromised_merchant")
    if instances:
        visit_cards, visit_merchants = visits_day(world, day)
        used = np.unique(visit_merchants)
        for merchant in rng.choice(used, min(instances, len(used)), replace=False):
            cards = np.unique(visit_cards[visit_merchants == merchant])
            victims = cards[rng.random(len(cards)) < COMPROMISED_MERCHANT["victim_share"]]
            if not len(victims):
                continue
            per_victim = rng.integers(
                COMPROMISED_MERCHANT["frauds_per_victim"][0],
                COMPROMISED_MERCHANT["frauds_per_victim"][1] + 1,
                len(victims),
            )
            card = np.repeat(victims, per_victim)
            delay = rng.integers(
                COMPROMISED_MERCHANT["delay_days"][0], COMPROMISED_MERCHANT["delay_days"][1] + 1, len(card)
            )
            when = t0 + delay * 86400 + rng.integers(0, 86400, len(card))
            parts.append(
                events(
                    card,
                    when,
                    _random_merchants(rng, rng.choice(ONLINE, len(card))),
                    np.exp(rng.normal(*COMPROMISED_MERCHANT["amount_lognormal"], len(card))),
                    "compromised_merchant",
                )
            )

    # large outlier: one purchase many times the cardholder's typical amount, in the daytime
    n = _instances(rng, expected, share["large_outlier"], "large_outlier")
    if n:
        card = rng.integers(0, n_cards, n)
        category = rng.choice(OUTLIER_CATEGORIES, n)
        typical = np.exp(CATEGORY_AMOUNT[category, 0]) * world.customers["wealth"].to_numpy()[card]
        when = t0 + rng.integers(9, 20, n) * 3600 + rng.integers(0, 3600, n)
        parts.append(
            events(
                card,
                when,
                _random_merchants(rng, category),
                typical * rng.uniform(*OUTLIER["multiple_of_typical"], n),
                "large_outlier",
            )
        )
    return Events.concat(parts)


# --- windows and batches ----------------------------------------------------------------------------


def window_events(
    world: World, start: datetime, end: datetime, fraud_rate: float, scenario_share: Mapping[str, float] | None = None
) -> Events:
    """Every transaction (legitimate and fraudulent) with start <= time < end, in time order."""
    t_start, t_end = int(start.timestamp()), int(end.timestamp())
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    plan_days = [first - timedelta(days=i) for i in range(LOOKBACK_DAYS, 0, -1)] + days
    mix = scenario_mix(scenario_share)
    everything = Events.concat(
        [legit_day(world, d) for d in days] + [_fraud_plan(world, d, fraud_rate, mix) for d in plan_days]
    )
    inside = everything.where((everything.when >= t_start) & (everything.when < t_end))
    order = np.lexsort((inside.key, inside.when))
    return inside.where(order)


CARD_COLUMNS = ("cc_num", *HOLDER_COLUMNS)  # what a transaction copies from its card's holder
FRAUD_KEY = np.uint64(1 << 63)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a well-spread 64-bit hash of each key (vectorized; uint64 wraps by design)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hex32(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Sparkov-like 32-hex-digit transaction numbers from two 64-bit hashes."""
    if not len(first):
        return np.array([], dtype=object)
    text = np.stack([first, second], axis=1).astype(">u8").tobytes().hex()
    return np.frombuffer(text.encode("ascii"), dtype="S32").astype("U32").astype(object)


def format_times(unix: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' (UTC), written digit by digit into a byte array: ~20x faster than strftime."""
    seconds = unix.astype("datetime64[s]")
    day = seconds.astype("datetime64[D]")
    month = seconds.astype("datetime64[M]")
    fields = [
        (seconds.astype("datetime64[Y]").astype(np.int64) + 1970, 4),
        (month.astype(np.int64) % 12 + 1, 2),
        ((day - month).astype(np.int64) + 1, 2),
        ((seconds - day).astype(np.int64) // 3600, 2),
        ((seconds - day).astype(np.int64) // 60 % 60, 2),
        ((seconds - day).astype(np.int64) % 60, 2),
    ]
    out = np.empty((len(unix), 19), dtype=np.uint8)
    position = 0
    for (value, width), separator in zip(fields, b"-- ::\0", strict=False):
        for digit in range(width):
            out[:, position + digit] = 48 + value // 10 ** (width - 1 - digit) % 10
        position += width
        if position < 19:
            out[:, position] = separator
            position += 1
    return out.view("S19").reshape(-1).astype("U19").astype(object)


def _uniform(events: Events, seed: int, salt: int) -> np.ndarray:
    """A uniform draw in [0, 1) per event, from a hash of the event's key (not a random stream), so every window
    that holds an event draws the same value for it."""
    hashed = mix64(mix64(events.key ^ np.uint64(seed)) ^ np.uint64(salt))
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def label_delays(
    events: Events, seed: int, label_delay_days: float, label_timing: LabelTiming | None = None
) -> np.ndarray:
    """Seconds from each transaction to its label; -1 for a fraud that is never labelled. Genuine transactions
    mature at `label_delay_days`; with no `label_timing` (constant timing) every label arrives then."""
    days = np.full(len(events.key), float(label_delay_days))
    if label_timing is not None:
        report, chargeback = (
            np.isin(events.scenario, [s for s, c in LABEL_CHANNEL.items() if c == channel])
            for channel in ("report", "chargeback")
        )
        # gamma(2, mean / 2) as the sum of two exponentials, each from its own hash of the key
        gamma = (
            -label_timing.report_mean_days
            / 2
            * (np.log1p(-_uniform(events, seed, 1)) + np.log1p(-_uniform(events, seed, 2)))
        )
        days[report] = np.minimum(gamma[report], REPORT_MAX_DAYS)
        low, high = label_timing.chargeback_days
        days[chargeback] = low + (high - low) * _uniform(events, seed, 3)[chargeback]
        days[(events.scenario != "") & (_uniform(events, seed, 4) < label_timing.unlabelled_share)] = -1.0
    return np.where(days < 0, -1, (days * 86400).astype(np.int64))


def to_rows(
    world: World, events: Events, label_delay_days: float, label_timing: LabelTiming | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sparkov rows (no label) and their labels, each arriving after its `label_delays` (never-labelled frauds
    have no label row)."""
    holder = {c: world.customers[c].to_numpy()[events.card] for c in CARD_COLUMNS}  # numpy take: no pandas reindexing
    merchants = {c: world.merchants[c].to_numpy()[events.merchant] for c in ("merchant", "category", "lat", "long")}
    stamps = format_times(events.when)
    first, second = mix64(events.key ^ np.uint64(world.seed)), mix64(events.key ^ np.uint64(world.seed) ^ GOLDEN)
    trans_nums = hex32(first, second)
    # where at the merchant's site the terminal sits: derived from the event itself, so windows agree
    jitter = np.stack([(first & np.uint64(0xFFFF)), (first >> np.uint64(16)) & np.uint64(0xFFFF)], axis=1) / 65535.0
    jitter = (jitter - 0.5) * 0.04
    frame = pd.DataFrame(
        {
            "trans_date_trans_time": stamps,
            "cc_num": holder["cc_num"],
            "merchant": merchants["merchant"],
            "category": merchants["category"],
            "amt": np.round(events.amount, 2),
            **{c: holder[c] for c in HOLDER_COLUMNS},
            "trans_num": trans_nums,
            "unix_time": events.when.astype(np.int64),
            "merch_lat": np.round(merchants["lat"] + jitter[:, 0], 6),
            "merch_long": np.round(merchants["long"] + jitter[:, 1], 6),
        }
    )[list(RAW_COLUMNS)]
    delay = label_delays(events, world.seed, label_delay_days, label_timing)
    known = delay >= 0
    labels = pd.DataFrame(
        {
            "trans_num": trans_nums[known],
            "is_fraud": (events.scenario[known] != "").astype(int),
            "labelled_at": format_times(events.when[known] + delay[known]),
            "scenario": events.scenario[known],
        }
    )
    return frame, labels


def content_digest(
    customers: int,
    fraud_rate: float,
    label_delay_days: float,
    label_timing: LabelTiming | None = None,
    scenario_share: Mapping[str, float] | None = None,
) -> str:
    """8 hex digits naming every parameter besides the seed and the window that changes a batch's content."""
    content = {
        "customers": int(customers),
        "fraud_rate": float(fraud_rate),
        "mix": scenario_mix(scenario_share),
        "label_delay_days": float(label_delay_days),
        "label_timing": "constant" if label_timing is None else dataclasses.asdict(label_timing),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]


def batch_id_for(seed: int, customers: int, digest: str, start: datetime, end: datetime) -> str:
    """`sim-<seed>-c<customers>-<content digest>-<start>-<end>`: two batches share an id only if they hold the
    same rows and labels."""
    return f"sim-{seed}-c{customers}-{digest}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}"


def simulate_window(
    world: World,
    start: datetime,
    end: datetime,
    fraud_rate: float,
    label_delay_days: float,
    *,
    label_timing: LabelTiming | None = None,
    scenario_share: Mapping[str, float] | None = None,
) -> Batch:
    """One batch of the transactions in [start, end) and their labels. label_timing None: constant timing."""
    if end <= start:
        raise ValueError(f"empty window: {start} .. {end}")
    events = window_events(world, start, end, fraud_rate, scenario_share)
    transactions, labels = to_rows(world, events, label_delay_days, label_timing)
    missing = ~transactions["trans_num"].isin(labels["trans_num"]).to_numpy()
    unlabelled = pd.DataFrame(
        {"trans_num": transactions["trans_num"].to_numpy()[missing], "scenario": events.scenario[missing]}
    )
    customers = len(world.customers)
    digest = content_digest(customers, fraud_rate, label_delay_days, label_timing, scenario_share)
    return Batch(batch_id_for(world.seed, customers, digest, start, end), start, end, transactions, labels, unlabelled)


def simulate_days(
    world: World,
    first_day: date,
    days: int,
    fraud_rate: float,
    label_delay_days: float,
    *,
    label_timing: LabelTiming | None = None,
    scenario_share: Mapping[str, float] | None = None,
) -> list[Batch]:
    """One batch per day: what the demo writes."""
    starts = [
        datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) + timedelta(days=i) for i in range(days)
    ]
    return [
        simulate_window(
            world,
            s,
            s + timedelta(days=1),
            fraud_rate,
            label_delay_days,
            label_timing=label_timing,
            scenario_share=scenario_share,
        )
        for s in starts
    ]
