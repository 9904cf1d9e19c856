"""Requests for the real-time path, whose decisions are recorded by trans_num."""

from __future__ import annotations

import uuid


def fresh(body: dict, **changes) -> dict:
    """`body` as a new transaction: its own trans_num (the same one would be a replay of the recorded answer)."""
    return {**body, "trans_num": uuid.uuid4().hex, **changes}
