"""Figures measured by the reliability, security and soak tests (kills survived, inputs fuzzed, requests served,
peak memory), printed in pytest's terminal summary so docs/reliability.md's table can quote the last run."""

from __future__ import annotations

FIGURES: list[tuple[str, str]] = []


def figure(test: str, text: str) -> None:
    """Record one figure of `test` (its path) for the summary at the end of the run."""
    FIGURES.append((test, text))
