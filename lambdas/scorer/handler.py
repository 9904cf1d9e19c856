"""Scorer Lambda: scores transactions with the promoted model (`LATEST` in the models bucket) run by LiteRT.
Imports no TensorFlow and no pandas. The model is cached across warm invocations; batch invocations re-read
`LATEST` every time, real-time ones at most every 30 s (each check is an object-store read).

Batch events write `fraud_score` rows (once per transaction and model version) with the flag from the
model's threshold and the top 3 reasons (`fraud.model.attribution`):
  {"batch_id": "sim-2026-11-01"}                              one processed batch
  {"since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z"}   event time in [since, until)
  {"since": …, "until": …, "unreviewed_only": true}            only those without label or sent alert
  {}                                                           everything the promoted model has not scored
  → {"model_version", "threshold", "scored", "flagged", "pending"}
  {"batch_ids": ["sim-…", …]}                                  those batches in turn, summed, plus "batches"
Invoked by Dagster (aws mode: `fraud_flags` through Pipes) a batch event also reports that result as the
asset's materialization; locally the asset calls the same handler in-process.

Real-time events go through the API's path (fraud/serving/realtime.py, one implementation: the same request
schema, rules, features, model, decision log and answer), recorded with channel "lambda":
  {"transaction": {"trans_num": …, "cc_num": …, "merchant": …, "amt": …, "trans_date_trans_time": …, …}}
  → {"trans_num", "score", "flagged", "threshold", "model_version", "feature_version", "reasons", "new_card",
     "new_merchant"}
  → {"error": {"code", "field", "message"}, "status": 422 | 409 | 503} when the transaction is invalid, its
     trans_num was decided for another transaction, or the database is unreachable (nothing recorded)
A Lambda function URL request (IAM auth; POST, body = the transaction as JSON) gets the same as an HTTP
response: 200, 400 (body not a JSON object), 405 (not a POST), 409, 413 (body over 16 KiB), 422 or 503.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import psycopg

from fraud.core.settings import Settings
from fraud.db.engine import get_engine
from fraud.db.roles import DbRole
from fraud.db.scores import Selection
from fraud.features.online import InvalidTransaction
from fraud.rules import live_rules
from fraud.serving.batch import ModelCache, score_selection
from fraud.serving.realtime import DecisionConflict, RealtimeScorer
from fraud.serving.request import validate_request
from lambdas import dagster_pipes, report_figures, without_pipes

MAX_BODY_BYTES = 16 * 1024

_models = ModelCache()  # survives warm invocations
_realtime: dict[str, RealtimeScorer] = {}


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# a batch invocation's counts: scores written, model flags, transactions read, decisions by outcome and source
COUNTS = ("scored", "flagged", "pending", "review", "block", "listed", "rule_errors")


def score_batch(event: dict, settings: Settings) -> dict:
    model = _models.get(settings)  # re-checks LATEST on every invocation
    selection = Selection(
        batch_id=event.get("batch_id"),
        since=_instant(event["since"]) if event.get("since") else None,
        until=_instant(event["until"]) if event.get("until") else None,
        unreviewed_only=bool(event.get("unreviewed_only")),
    )
    engine = get_engine(settings, role=DbRole.WRITER)  # batch scoring writes fraud_score; real-time: RealtimeScorer
    result = score_selection(
        engine, model, selection, live_rules(settings.rules_path), reasons_top_share=settings.reasons_top_share
    )
    return {
        "model_version": model.version,
        "threshold": model.threshold,
        "ruleset_version": result.ruleset_version,
        **{name: getattr(result, name) for name in COUNTS},
    }


def score_batches(event: dict, settings: Settings) -> dict:
    """Each of `batch_ids` in turn (the newest model for each), summed; the model version is the last one's."""
    results = [score_batch({"batch_id": batch_id}, settings) for batch_id in event["batch_ids"]]
    if not results:
        raise ValueError("batch_ids is empty")
    return {
        "model_version": results[-1]["model_version"],
        "threshold": results[-1]["threshold"],
        "batches": len(results),
        "ruleset_version": results[-1]["ruleset_version"],
        **{key: sum(r[key] for r in results) for key in COUNTS},
    }


def _scorer(settings: Settings) -> RealtimeScorer:
    key = settings.model_dump_json()
    if key not in _realtime:
        _realtime[key] = RealtimeScorer(settings, _models)
    return _realtime[key]


def score_transaction(transaction: object, settings: Settings) -> dict:
    try:
        return _scorer(settings).score(validate_request(transaction), channel="lambda")
    except InvalidTransaction as problem:
        return _error(problem)
    except DecisionConflict as problem:
        return _error(InvalidTransaction("trans_num_conflict", "trans_num", str(problem)), 409)
    except psycopg.OperationalError:
        message = "the database did not answer; nothing was recorded, retry later"
        return _error(InvalidTransaction("database_unavailable", "database", message), 503)


def _error(problem: InvalidTransaction, status: int = 422) -> dict:
    return {"error": {"code": problem.code, "field": problem.field, "message": problem.message}, "status": status}


def _is_function_url(event: dict) -> bool:
    return "http" in (event.get("requestContext") or {})


def score_http(event: dict, settings: Settings) -> dict:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    if event["requestContext"]["http"].get("method", "POST") != "POST":
        result = _error(InvalidTransaction("method_not_allowed", "method", "POST the transaction as JSON"), 405)
    elif len(raw) > MAX_BODY_BYTES:
        result = _error(
            InvalidTransaction("body_too_large", "body", f"the body must be at most {MAX_BODY_BYTES} bytes"), 413
        )
    else:
        try:
            transaction = json.loads(raw)
        except ValueError:
            transaction = None
        if isinstance(transaction, dict):
            result = score_transaction(transaction, settings)
        else:
            result = _error(InvalidTransaction("malformed_request", "body", "the body must be a JSON object"), 400)
    status = result.pop("status", 200)
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(result)}


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    if _is_function_url(event):
        return score_http(event, settings)
    if "transaction" in event:
        return score_transaction(event["transaction"], settings)
    with dagster_pipes(event) as pipes:
        batch = without_pipes(event)
        result = score_batches(batch, settings) if "batch_ids" in batch else score_batch(batch, settings)
        report_figures(pipes, result)
    return result
