from dagster import AssetExecutionContext, Config, MaterializeResult, asset

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.db.review import count_unreviewed, recent_window
from fraud.model import registry


class ScoringScope(Config):
    """What a run scores. Default: every transaction the promoted model has not scored yet ("Materialize all").
    The raw-batch sensor names its batch; the model-promotion sensor asks for the unreviewed transactions of
    the last `rescore_days` days (no label and no sent customer alert: fraud.db.review)."""

    batch_ids: list[str] = []
    rescore_days: int = 0


@asset(
    group_name="scoring",
    deps=["processed_transactions", "fraud_model"],
    kinds={"python", "postgres"},
    code_version=CODE_VERSIONS["fraud_flags"],
    owners=["team:fraud-ml"],
    description="Fraud scores, flags and decisions (the block/allow lists, then the rules: approve, review or "
    "block) in `fraud_score`, written by the scorer Lambda (LiteRT, no TensorFlow; "
    "invoked through Dagster Pipes in aws mode, in-process locally) for every transaction the promoted model has "
    "not scored yet; a run config narrows it to given raw batches or to rescoring the last days' unreviewed "
    "transactions.",
)
def fraud_flags(context: AssetExecutionContext, config: ScoringScope, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()  # make sure the schema is migrated before the handler writes
    if config.batch_ids or config.rescore_days:
        if registry.promoted_version(settings) is None:
            # a batch that lands before the first model is scored by the first materialization of fraud_flags
            context.log.warning("no promoted model yet: nothing scored")
            return MaterializeResult(metadata={"scored": 0, "flagged": 0, "model_version": "none"})

    def score(event: dict) -> dict:
        if settings.mode == "aws":
            return fraud.invoke_function(context, "scorer", event)
        from lambdas.scorer.handler import handler  # imported here only: aws mode never loads it into this process

        return handler(event, settings=settings)

    if config.batch_ids:
        result = score({"batch_ids": config.batch_ids})
    elif config.rescore_days:
        since, until = recent_window(engine, config.rescore_days)
        window = {"since": since.isoformat(), "until": until.isoformat()}
        result = {
            **score({**window, "unreviewed_only": True}),
            **window,
            "unreviewed_in_window": count_unreviewed(engine, since, until),
        }
    else:
        result = score({})
    context.log.info(
        f"scored {result['scored']} transactions with {result['model_version']}; rules {result['ruleset_version']}: "
        f"{result['review']} to review, {result['block']} blocked ({result['listed']} by a list entry)"
    )
    if result["rule_errors"]:
        context.log.warning(f"{result['rule_errors']} rule evaluations failed (those rules did not fire)")
    return MaterializeResult(metadata={k: meta.number(v) if isinstance(v, float) else v for k, v in result.items()})
