from dagster import AssetExecutionContext, MaterializeResult, asset

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS


@asset(
    group_name="ingestion",
    kinds={"s3", "python"},
    owners=["team:fraud-data"],
    code_version=CODE_VERSIONS["raw_transactions"],
    description="Raw Sparkov-schema transaction batches (`jsonl.gz`) and their delayed labels (customer reports in "
    "days, chargebacks in weeks, some never) in the raw zone, written by the generator Lambda (invoked through "
    "Dagster Pipes in aws mode, run in-process locally).",
)
def raw_transactions(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    if fraud.settings().mode == "aws":
        figures = fraud.invoke_function(context, "generator", {})
    else:  # imported here only: aws mode never loads the handler into this process
        from lambdas.generator.handler import figures as generation_figures
        from lambdas.generator.handler import handler as generate

        figures = generation_figures(generate({}, settings=fraud.settings()))
    context.log.info(f"wrote {figures['batches']} raw batches to {figures['bucket']}")
    listed = list(figures["batch_keys"])  # the generator lists as many as its Pipes report has room for
    if len(listed) < figures["batches"]:
        listed.append([f"… and {figures['batches'] - len(listed)} more", None, None, None])
    return MaterializeResult(
        metadata={
            "batches": figures["batches"],
            "rows": figures["rows"],
            "frauds_injected": figures["frauds_injected"],
            # realistic label timing: a share of frauds is never labelled (docs/simulator.md#labels)
            "frauds_never_labelled": figures["frauds_never_labelled"],
            "fraud_scenarios": meta.counts(figures["fraud_scenarios"], "scenario", "frauds"),
            "batch_keys": meta.table(
                ["batch", "rows", "frauds", "key"],
                listed,
            ),
        }
    )
