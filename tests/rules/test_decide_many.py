"""`decide_many` (the batch scorer's decisions, a page column by column) gives every transaction the verdict `decide`
gives it one at a time (the real-time path's): outcome, deciding rule or list entry, fired rules, errors."""

import numpy as np

from fraud.features.catalog import FEATURE_NAMES
from fraud.rules import Entity, ListHit, ListKind, RuleSet, decide, hits_for, live_rules, load_rules, rule_fields
from fraud.rules.decision import decide_many

RULES = """
version = "many.1"
[[rule]]
id = "model-threshold"
description = "flagged"
expression = "score >= threshold"
outcome = "review"
priority = 10
[[rule]]
id = "velocity"
description = "fast card"
expression = "card_count_1h >= 0.8 && hour < 0.5"
outcome = "block"
priority = 100
[[rule]]
id = "big-at-merchant"
description = "big amount at a merchant of the test"
expression = "amt >= 50.0 && merchant.startsWith('m1') && category != 'travel'"
outcome = "review"
priority = 20
[[rule]]
id = "ratio"
description = "fails when the count is 0 (an integer division by zero)"
expression = "int(amt) / int(card_count_1d * 2.0) > 100"
outcome = "review"
priority = 5
"""


def page(n: int, seed: int):
    rng = np.random.default_rng(seed)
    features = rng.random((n, len(FEATURE_NAMES))).astype(np.float32)
    amounts = np.round(rng.gamma(2.0, 30.0, n), 2).tolist()
    categories = [None if i % 7 == 0 else ("travel" if i % 3 == 0 else "grocery_pos") for i in range(n)]
    merchants = [f"m{i % 13}" for i in range(n)]
    cards = [f"card-{i % 50}" for i in range(n)]
    scores = rng.random(n).astype(np.float32)
    return features, amounts, categories, merchants, cards, scores


def one_at_a_time(ruleset, features, amounts, categories, merchants, cards, scores, threshold, listed):
    return [
        decide(
            ruleset,
            rule_fields(ruleset, vector, amt, category, merchant, score, threshold),
            hits_for(listed, card, merchant, category),
        )
        for vector, amt, category, merchant, card, score in zip(
            features.tolist(), amounts, categories, merchants, cards, scores.tolist(), strict=True
        )
    ]


def test_a_page_gets_the_verdicts_decide_gives_one_at_a_time():
    listed = {
        (Entity.CARD.value, "card-3"): [ListHit(ListKind.BLOCK, 7, Entity.CARD)],
        (Entity.MERCHANT.value, "m5"): [ListHit(ListKind.ALLOW, 2, Entity.MERCHANT)],
        (Entity.CATEGORY.value, ""): [ListHit(ListKind.ALLOW, 9, Entity.CATEGORY)],  # no category
    }
    for ruleset in (load_rules(RULES), live_rules(), RuleSet("none", ())):
        for index in (listed, {}):
            columns = page(3_000, seed=len(ruleset.rules))
            expected = one_at_a_time(ruleset, *columns, 0.7, index)
            assert decide_many(ruleset, *columns, 0.7, index) == expected
            outcomes = {v.outcome.value for v in expected}
            if ruleset.version == "many.1":  # every path of a verdict is exercised
                assert outcomes == {"approve", "review", "block"}
                assert any(v.errors for v in expected) and any(len(v.fired) > 1 for v in expected)
                assert any(v.rule and v.rule.endswith("-list#7") for v in expected) == bool(index)
