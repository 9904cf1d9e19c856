from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from lambdas.generator.handler import handler as generate


@asset(
    group_name="ingestion",
    kinds={"s3", "python"},
    owners=["team:fraud-data"],
    code_version=CODE_VERSIONS["raw_transactions"],
    description="Raw Sparkov-schema transaction batches (jsonl.gz) and their delayed labels (customer reports in "
    "days, chargebacks in weeks, some never) in the raw zone, written by the generator Lambda (run "
    "in-process locally).",
)
def raw_transactions(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    result = generate({}, settings=fraud.settings())
    batches = result["batches"]
    context.log.info(f"wrote {len(batches)} raw batches to {result['bucket']}")
    return MaterializeResult(
        metadata={
            "batches": len(batches),
            "rows": sum(b["rows"] for b in batches),
            "frauds_injected": sum(b["frauds"] for b in batches),
            # realistic label timing: a share of frauds is never labelled (docs/simulator.md#labels)
            "frauds_never_labelled": sum(b["unlabelled_frauds"] for b in batches),
            "batch_keys": MetadataValue.md(
                "\n".join(f"- `{b['transactions_key']}` ({b['rows']} rows)" for b in batches)
            ),
        }
    )
