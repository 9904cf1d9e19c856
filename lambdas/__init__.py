"""The Lambda handlers: thin adapters over the domain. What they share (this module ships in every Lambda zip):
speaking Dagster Pipes when Dagster invoked them.

`PipesLambdaClient` (dagster-aws) adds the Pipes bootstrap parameters to the event and reads the messages from the
last 4 KB of the invocation's log (LogType=Tail); the handlers report their figures as the asset's materialization,
flushed to stderr when the session closes, so the reports must stay small. Invoked by anything else (the
generator's schedule, the scorer's function URL, a batch event by hand) the event has no Pipes keys and the
handlers just return their result."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    PipesContext,
    PipesDefaultContextLoader,
    PipesDefaultMessageWriter,
    PipesMappingParamsLoader,
)

PIPES_KEYS = (DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR)


@contextmanager
def dagster_pipes(event: dict) -> Iterator[PipesContext | None]:
    """The Pipes session of this invocation when Dagster sent the event, else None. One session per invocation:
    built directly rather than through `open_dagster_pipes`, whose process-wide singleton would hand a warm Lambda's
    second invocation the first one's closed session. An exception closes the session with it and propagates."""
    if DAGSTER_PIPES_CONTEXT_ENV_VAR not in event:
        yield None
        return
    params = PipesMappingParamsLoader(event)
    with PipesContext(params, PipesDefaultContextLoader(), PipesDefaultMessageWriter()) as pipes:
        yield pipes


def report_figures(pipes: PipesContext | None, figures: dict) -> None:
    """Report plain figures (numbers, text, lists and mappings of them) as the asset's materialization metadata;
    nothing when Dagster did not invoke this function."""
    if pipes is None:
        return
    typed = {k: {"raw_value": v, "type": "json"} if isinstance(v, (dict, list)) else v for k, v in figures.items()}
    pipes.report_asset_materialization(metadata=typed)


def without_pipes(event: dict) -> dict:
    """The event as the domain reads it: without the Pipes bootstrap parameters."""
    return {key: value for key, value in event.items() if key not in PIPES_KEYS}
