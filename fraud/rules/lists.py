"""Block and allow lists: entries on a card token, a merchant or a category, each in force from when it was added
until its expiry or its removal (fraud/db/lists.py stores them, with an audit trail). The lists are applied before
the model's rules in both paths (fraud/rules/decision.py): a block entry blocks, an allow entry approves, and a
transaction on both lists is blocked (a block is the safer mistake)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class ListKind(StrEnum):
    BLOCK = "block"
    ALLOW = "allow"


class Entity(StrEnum):
    """What an entry names: the card (by its token: a card number never reaches a list), the merchant, the
    merchant category."""

    CARD = "card"
    MERCHANT = "merchant"
    CATEGORY = "category"


def _ref_prefix(kind: ListKind) -> str:
    return f"{kind.value}-list#"


_REF_PREFIXES = tuple(_ref_prefix(kind) for kind in ListKind)


@dataclass(frozen=True, order=True)
class ListHit:
    """An entry in force that names one of a transaction's entities."""

    kind: ListKind
    entry_id: int
    entity: Entity

    @property
    def ref(self) -> str:
        """How a decision names the entry that decided it, e.g. `block-list#12`."""
        return f"{_ref_prefix(self.kind)}{self.entry_id}"

    @classmethod
    def parse(cls, text: str) -> ListHit:
        """From the database's `kind:entity:id` (fraud/db/lists.py HITS)."""
        kind, entity, entry_id = text.split(":")
        return cls(ListKind(kind), int(entry_id), Entity(entity))


def hits_for(
    index: Mapping[tuple[str, str], list[ListHit]], card_token: str, merchant: str, category: str | None
) -> list[ListHit]:
    """The entries of `index` (entity, value → entries in force) naming a transaction's card, merchant or category."""
    if not index:
        return []
    return [
        *index.get((Entity.CARD.value, card_token), ()),
        *index.get((Entity.MERCHANT.value, merchant), ()),
        *index.get((Entity.CATEGORY.value, category or ""), ()),
    ]


def is_list_ref(decided_by: str | None) -> bool:
    """Whether a decision's `decided_by` names a list entry (`ListHit.ref`) rather than a rule."""
    return decided_by is not None and decided_by.startswith(_REF_PREFIXES)


def deciding_entry(hits: Iterable[ListHit]) -> ListHit | None:
    """The entry that decides: a block entry before any allow entry, the oldest (lowest id) of a kind."""
    blocks = sorted(hit for hit in hits if hit.kind is ListKind.BLOCK)
    if blocks:
        return blocks[0]
    allows = sorted(hit for hit in hits if hit.kind is ListKind.ALLOW)
    return allows[0] if allows else None
