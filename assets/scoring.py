from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.resources import FraudPlatform
from lambdas.scorer.handler import handler as score


@asset(group_name="scoring", deps=["processed_transactions", "fraud_model"], kinds={"python", "postgres"},
       owners=["team:fraud-ml"],
       description="Fraud scores and flags in `fraud_score`, written by the scorer Lambda (LiteRT, no TensorFlow; "
                   "in-process locally) for every transaction the promoted model has not scored yet.")
def fraud_flags(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    fraud.engine()  # make sure the schema is migrated before the handler writes
    result = score({}, settings=fraud.settings())
    context.log.info(f"scored {result['scored']} transactions with {result['model_version']}")
    return MaterializeResult(metadata=result)
