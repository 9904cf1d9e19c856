from dagster import AssetExecutionContext, MaterializeResult, asset

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from lambdas.generator.handler import handler as generate


@asset(
    group_name="ingestion",
    kinds={"s3", "python"},
    owners=["team:fraud-data"],
    code_version=CODE_VERSIONS["raw_transactions"],
    description="Raw Sparkov-schema transaction batches (`jsonl.gz`) and their delayed labels (customer reports in "
    "days, chargebacks in weeks, some never) in the raw zone, written by the generator Lambda (run "
    "in-process locally).",
)
def raw_transactions(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    result = generate({}, settings=fraud.settings())
    batches = result["batches"]
    context.log.info(f"wrote {len(batches)} raw batches to {result['bucket']}")
    scenarios: dict[str, int] = {}
    for batch in batches:
        for name, count in batch.get("scenarios", {}).items():
            scenarios[name] = scenarios.get(name, 0) + count
    return MaterializeResult(
        metadata={
            "batches": len(batches),
            "rows": sum(b["rows"] for b in batches),
            "frauds_injected": sum(b["frauds"] for b in batches),
            # realistic label timing: a share of frauds is never labelled (docs/simulator.md#labels)
            "frauds_never_labelled": sum(b["unlabelled_frauds"] for b in batches),
            "fraud_scenarios": meta.counts(scenarios, "scenario", "frauds"),
            "batch_keys": meta.table(
                ["batch", "rows", "frauds", "key"],
                ([b["batch_id"], b["rows"], b["frauds"], b["transactions_key"]] for b in batches),
            ),
        }
    )
