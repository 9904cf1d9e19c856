"""The block and allow lists in PostgreSQL (`list_entry`, `list_audit`: migration 0006; what they mean:
fraud/rules/lists.py).

`IN_FORCE` is the one definition of an entry that applies: not removed, not past its expiry at the moment of the
decision (the database's clock, `now()`: the same for the API, the Lambda and batch scoring). `HITS` is the SQL
expression both paths select with each transaction: the entries in force naming its card token, merchant or
category, as `kind:entity:id` texts (fraud.rules.lists.ListHit.parse), or NULL."""

from __future__ import annotations

IN_FORCE = "e.removed_at IS NULL AND (e.expires_at IS NULL OR e.expires_at > now())"


def hits_sql(card_token: str, merchant: str, category: str) -> str:
    """The HITS expression for a row whose card token, merchant and category are the given SQL expressions."""
    return (
        "(SELECT array_agg(e.kind || ':' || e.entity || ':' || e.id) FROM list_entry e "
        f"WHERE {IN_FORCE} AND ((e.entity = 'card' AND e.value = {card_token}) "
        f"OR (e.entity = 'merchant' AND e.value = {merchant}) "
        f"OR (e.entity = 'category' AND e.value = {category})))"
    )
