"""The features in words: one phrase per feature of the catalogue (FEATURE_NAMES) that says its value for one
transaction and, where the same vector holds it, what is usual for the card or the merchant ("6 purchases on this
card in the last hour; usually 0.2 an hour", usual = the card's 30-day count / 720). The stored top reasons of a
score ([{"feature": "amt_log", "contribution": 0.41}, ...]) become the lines an analyst, a stakeholder or a
cardholder reads.

The vector is the transaction's, in FEATURE_NAMES order, as `transaction_features` stores it; transformed values
are turned back for display (amt_log = log1p(amount), secs_since_prev_log = log1p(seconds), city_pop_log =
log1p(population): fraud/features/rows.py). Every feature has a phrase (tests/features/test_phrases.py fails for a
new one without). Plain strings: callers escape them (Jinja2 autoescapes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from fraud.core.schema import CATEGORIES
from fraud.features.catalog import (
    FEATURE_NAMES,
    LABEL_WINDOWS,
    LONGEST_WINDOW_SECONDS,
    MERCHANT_WINDOWS,
    WINDOWS,
)

Vector = Mapping[str, float]

CATEGORY_WORDS: dict[str, str] = {
    "entertainment": "entertainment",
    "food_dining": "food and dining",
    "gas_transport": "gas and transport",
    "grocery_net": "groceries, online",
    "grocery_pos": "groceries, in store",
    "health_fitness": "health and fitness",
    "home": "home",
    "kids_pets": "kids and pets",
    "misc_net": "miscellaneous, online",
    "misc_pos": "miscellaneous, in store",
    "personal_care": "personal care",
    "shopping_net": "shopping, online",
    "shopping_pos": "shopping, in store",
    "travel": "travel",
}
_IN_THE_LAST = {"1h": "the last hour", "1d": "the last day", "7d": "the last 7 days", "30d": "the last 30 days"}
_PER = {"1h": "an hour", "1d": "a day", "7d": "a week"}
_MONTH = WINDOWS["30d"]


# --- numbers as people read them -------------------------------------------------------------------------------


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _whole(value: float) -> int:
    return int(round(value))


def _purchases(count: float, adjective: str = "") -> str:
    n = _whole(count)
    word = f"{adjective} purchase" if adjective else "purchase"
    if n == 0:
        return f"No {word}s"
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _usual(value: float) -> str:
    """A usual count or factor: 0.0014, 0.05, 0.2, 1.3, 5, 12, 1,240."""
    if value == 0:
        return "0"
    if value < 0.095:
        return f"{value:.2g}"
    if value < 9.95:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:,.0f}"


def _share(rate: float) -> str:
    if rate == 0:
        return "0%"
    return f"{rate:.1%}".replace(".0%", "%") if rate < 0.095 else f"{rate:.0%}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        n = _whole(seconds)
        return f"{n} second" + ("" if n == 1 else "s")
    if seconds < 90 * 60:
        return f"{_whole(seconds / 60)} minutes"
    if seconds < 48 * 3600:
        return f"{_usual(seconds / 3600)} hours"
    return f"{_usual(seconds / 86400)} days"


def _category(v: Vector) -> str | None:
    """The transaction's category in words (None when empty or unknown: every one-hot is 0)."""
    for name in CATEGORIES:
        if v[f"cat_{name}"] >= 0.5:
            return CATEGORY_WORDS[name]
    return None


def _amount(v: Vector) -> float:
    return round(math.expm1(v["amt_log"]), 2)


def _has_history(v: Vector) -> bool:
    return v["card_count_30d"] >= 0.5 and v["card_mean_amt_30d"] > 0


# --- one phrase per feature --------------------------------------------------------------------------------------


def _amount_phrase(v: Vector) -> str:
    amount = _money(_amount(v))
    if not _has_history(v):
        return f"Amount {amount}; no earlier purchase on this card in 30 days to compare with"
    factor = _factor(v["amt_over_card_mean_30d"])
    return f"Amount {amount}, {factor} this card's 30-day average of {_money(v['card_mean_amt_30d'])}"


def _amount_z(v: Vector) -> str:
    if not _has_history(v):
        return _amount_phrase(v)
    z = v["amt_z_card_30d"]
    side = "above" if z >= 0 else "below"
    return (
        f"Amount {_money(_amount(v))}, {abs(z):.1f} standard deviations {side} this card's 30-day average of "
        f"{_money(v['card_mean_amt_30d'])}"
    )


def _time_of_day(v: Vector) -> str:
    hour = _whole(v["hour"]) % 24
    night = v["is_night"] >= 0.5
    return f"Between {hour:02d}:00 and {(hour + 1) % 24:02d}:00 UTC, " + ("at night" if night else "during the day")


def _weekend(v: Vector) -> str:
    return "On a weekend (Saturday or Sunday, UTC)" if v["is_weekend"] >= 0.5 else "On a weekday (UTC)"


def _age(v: Vector) -> str:
    if v["age_known"] < 0.5:
        return "Cardholder's date of birth not on file"
    return f"Cardholder aged {math.floor(v['age_years'])}"


def _city(v: Vector) -> str:
    if v["city_pop_known"] < 0.5:
        return "Cardholder's city population not on file"
    return f"Cardholder's city has {_whole(math.expm1(v['city_pop_log'])):,} inhabitants"


def _distance(v: Vector) -> str:
    if v["distance_known"] < 0.5:
        return "Distance from the cardholder's home unknown (the home or the merchant's location is missing)"
    km = v["distance_km"]
    if km < 1:
        return "Less than 1 km from the cardholder's home"
    return f"{km:.1f} km from the cardholder's home" if km < 9.95 else f"{km:,.0f} km from the cardholder's home"


def _card_count(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        text = f"{_purchases(v[f'card_count_{window}'])} on this card in {_IN_THE_LAST[window]}"
        if window in _PER:
            text += f"; usually {_usual(v['card_count_30d'] * WINDOWS[window] / _MONTH)} {_PER[window]}"
        return text

    return phrase


def _card_mean(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        if v[f"card_count_{window}"] < 0.5:
            return f"No purchases on this card in {_IN_THE_LAST[window]}"
        text = f"Purchases on this card in {_IN_THE_LAST[window]} averaged {_money(v[f'card_mean_amt_{window}'])}"
        if window != "30d":
            text += f"; usually {_money(v['card_mean_amt_30d'])}"
        return text

    return phrase


def _since_previous(v: Vector) -> str:
    seconds = math.expm1(v["secs_since_prev_log"])
    if seconds >= LONGEST_WINDOW_SECONDS - 1:
        return "First purchase on this card in 30 days"
    text = f"{_duration(seconds)} after this card's previous purchase"
    if v["card_count_30d"] >= 0.5:
        text += f"; usually one every {_duration(_MONTH / v['card_count_30d'])}"
    return text


def _distinct_merchants(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        n = _whole(v[f"card_distinct_merchants_{window}"])
        merchants = "No merchant" if n == 0 else ("1 merchant" if n == 1 else f"{n:,} different merchants")
        return f"{merchants} paid with this card in {_IN_THE_LAST[window]}"

    return phrase


def _new_merchant(v: Vector) -> str:
    first = v["card_new_merchant_30d"] >= 0.5
    return ("First" if first else "Not the first") + " purchase at this merchant in 30 days"


def _new_category(v: Vector) -> str:
    first = "First" if v["card_new_category_30d"] >= 0.5 else "Not the first"
    category = _category(v)
    where = f"in this category ({category})" if category else "without a category"
    return f"{first} purchase {where} in 30 days"


def _known_frauds(v: Vector) -> str:
    return f"{_purchases(v['card_known_frauds_60d'], 'earlier')} on this card in the last 60 days confirmed fraud"


def _merchant_count(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        text = f"{_purchases(v[f'merchant_count_{window}'])} at this merchant in {_IN_THE_LAST[window]}"
        if window in _PER:
            text += f"; usually {_usual(v['merchant_count_30d'] * MERCHANT_WINDOWS[window] / _MONTH)} {_PER[window]}"
        return text

    return phrase


def _factor(ratio: float) -> str:
    """A ratio against the usual: 8.3 times, 12% of, about."""
    if ratio >= 1.1:
        return f"{_usual(ratio)} times"
    return f"{ratio:.0%} of" if ratio <= 0.9 else "about"


def _merchant_volume(v: Vector) -> str:
    return (
        f"Merchant's volume {_factor(v['merchant_volume_ratio_1d'])} its daily average: "
        f"{_purchases(v['merchant_count_1d']).lower()} in the last day, "
        f"usually {_usual(v['merchant_count_30d'] / 30)} a day"
    )


def _merchant_labels(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        labels = _whole(v[f"merchant_labels_{window}"])
        text = f"{_purchases(labels)} at this merchant labelled in {_IN_THE_LAST[window]}"
        if labels:
            text += f", {_whole(v[f'merchant_fraud_rate_{window}'] * labels):,} of them fraud"
        return text

    return phrase


def _merchant_rate(window: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        labels = _whole(v[f"merchant_labels_{window}"])
        if not labels:
            return f"Merchant's fraud rate unknown over {_IN_THE_LAST[window]}: no purchase there labelled"
        return (
            f"Merchant's fraud rate {_share(v[f'merchant_fraud_rate_{window}'])} over {_IN_THE_LAST[window]} "
            f"(of {labels:,} labelled)"
        )

    return phrase


def _category_flag(name: str) -> Callable[[Vector], str]:
    def phrase(v: Vector) -> str:
        if v[f"cat_{name}"] >= 0.5:
            return f"Category: {CATEGORY_WORDS[name]}"
        actual = _category(v)
        return (
            f"Category: {actual} (not {CATEGORY_WORDS[name]})"
            if actual
            else f"No category (not {CATEGORY_WORDS[name]})"
        )

    return phrase


PHRASES: dict[str, Callable[[Vector], str]] = {
    "amt_log": _amount_phrase,
    "hour": _time_of_day,
    "is_night": _time_of_day,
    "is_weekend": _weekend,
    "age_years": _age,
    "age_known": _age,
    "city_pop_log": _city,
    "city_pop_known": _city,
    "distance_km": _distance,
    "distance_known": _distance,
    **{f"card_count_{w}": _card_count(w) for w in WINDOWS},
    **{f"card_mean_amt_{w}": _card_mean(w) for w in WINDOWS},
    "amt_over_card_mean_30d": _amount_phrase,
    "amt_z_card_30d": _amount_z,
    "secs_since_prev_log": _since_previous,
    "card_distinct_merchants_1h": _distinct_merchants("1h"),
    "card_distinct_merchants_1d": _distinct_merchants("1d"),
    "card_new_merchant_30d": _new_merchant,
    "card_new_category_30d": _new_category,
    "card_known_frauds_60d": _known_frauds,
    **{f"merchant_count_{w}": _merchant_count(w) for w in MERCHANT_WINDOWS},
    "merchant_volume_ratio_1d": _merchant_volume,
    **{f"merchant_labels_{w}": _merchant_labels(w) for w in LABEL_WINDOWS},
    **{f"merchant_fraud_rate_{w}": _merchant_rate(w) for w in LABEL_WINDOWS},
    **{f"cat_{name}": _category_flag(name) for name in CATEGORIES},
}


# --- the API -----------------------------------------------------------------------------------------------------


def _vector(features: Sequence[float] | None) -> dict[str, float] | None:
    """The vector by feature name; None when it is missing, of another length or not finite."""
    if features is None:
        return None
    values = [float(x) for x in features]
    if len(values) != len(FEATURE_NAMES) or not all(math.isfinite(x) for x in values):
        return None
    return dict(zip(FEATURE_NAMES, values, strict=True))


def describe(feature: str, features: Sequence[float]) -> str:
    """One feature of a transaction in words, from its feature vector (FEATURE_NAMES order). KeyError for a name the
    catalogue does not have, ValueError for a vector that is not one of the catalogue's."""
    phrase = PHRASES[feature]
    vector = _vector(features)
    if vector is None:
        raise ValueError(f"a feature vector has {len(FEATURE_NAMES)} finite values")
    return phrase(vector)


def _names(reasons: Iterable[object]) -> list[str]:
    names = []
    for reason in reasons or ():
        name = reason.get("feature") if isinstance(reason, Mapping) else reason
        if name is not None:
            names.append(str(name))
    return names


def _unique(phrases: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(phrases))  # two features can say the same thing (amt_log, amt_over_card_mean_30d)


def describe_reasons(reasons: list[dict], features: Sequence[float]) -> list[str]:
    """The stored top reasons ([{"feature": ..., "contribution": ...}, ...], strongest first) in words, in their
    order, each phrase once. A reason the vector cannot describe (a feature of another catalogue version, no stored
    vector) keeps its feature name: nothing is dropped silently."""
    vector = _vector(features)
    return _unique(
        PHRASES[name](vector) if vector is not None and name in PHRASES else name for name in _names(reasons)
    )


# --- for the cardholder (the alert email) ------------------------------------------------------------------------

# The reasons a cardholder is told, when the value reads as a reason to ask: their own payment and their card's
# habits. Never the merchant's figures (other customers' data, and the merchant's business), labels, the holder's
# profile or the flags that say a field was missing.


def _always(v: Vector) -> bool:
    return True


CARDHOLDER: dict[str, Callable[[Vector], bool]] = {
    "amt_log": _always,
    "amt_over_card_mean_30d": _always,
    "amt_z_card_30d": _always,
    "hour": lambda v: v["is_night"] >= 0.5,
    "is_night": lambda v: v["is_night"] >= 0.5,
    "distance_km": lambda v: v["distance_known"] >= 0.5 and v["distance_km"] >= 1,
    **{f"card_count_{w}": (lambda v, w=w: v[f"card_count_{w}"] >= 0.5) for w in _PER},
    **{f"card_mean_amt_{w}": (lambda v, w=w: v[f"card_count_{w}"] >= 0.5) for w in _PER},
    "secs_since_prev_log": _always,
    "card_distinct_merchants_1h": lambda v: v["card_distinct_merchants_1h"] >= 1.5,
    "card_distinct_merchants_1d": lambda v: v["card_distinct_merchants_1d"] >= 1.5,
    "card_new_merchant_30d": lambda v: v["card_new_merchant_30d"] >= 0.5,
    "card_new_category_30d": lambda v: v["card_new_category_30d"] >= 0.5,
}
# a cardholder reads the amount against the average, not in standard deviations
_CARDHOLDER_PHRASES: dict[str, Callable[[Vector], str]] = {"amt_z_card_30d": _amount_phrase}


def for_cardholder(reasons: list[dict], features: Sequence[float] | None, limit: int = 2) -> list[str]:
    """At most `limit` phrases of the top reasons, in their order, that a cardholder may read (CARDHOLDER); empty
    when none (no reasons, no vector, or only reasons about the merchant or the holder's profile)."""
    vector = _vector(features)
    if vector is None:
        return []
    shown = _unique(
        _CARDHOLDER_PHRASES.get(name, PHRASES[name])(vector)
        for name in _names(reasons)
        if name in CARDHOLDER and CARDHOLDER[name](vector)
    )
    return shown[:limit]
