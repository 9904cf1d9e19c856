from datetime import datetime, timezone

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.resources import FraudPlatform
from fraud import registry
from fraud.db.queries import flagged_transactions, scored_transactions
from fraud.notify import mailer_for, send_alerts
from fraud.report import build_report


def _promoted(fraud: FraudPlatform) -> tuple[str, dict]:
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        raise RuntimeError("no promoted model yet: materialize fraud_model first")
    return version, registry.load_metadata(store, settings.model_name, version)


@asset(group_name="reporting", deps=["fraud_flags"], kinds={"html", "s3"}, owners=["team:fraud-ops"],
       description="Self-contained HTML report for stakeholders (plots embedded) plus a CSV of flagged transactions, "
                   "in the reports bucket under reports/<timestamp>/ and as latest.html.")
def fraud_report(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()
    version, metadata = _promoted(fraud)
    report = build_report(scored_transactions(engine, version), flagged_transactions(engine, version), metadata,
                          settings.alert_budget_per_day)
    store = fraud.store(settings.reports_bucket)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    store.put_bytes(f"reports/{stamp}/report.html", report.html.encode(), "text/html")
    store.put_bytes(f"reports/{stamp}/flagged.csv", report.flagged_csv.encode(), "text/csv")
    store.put_bytes("latest.html", report.html.encode(), "text/html")
    store.put_bytes("latest-flagged.csv", report.flagged_csv.encode(), "text/csv")
    return MaterializeResult(metadata={
        **{k: v for k, v in report.headline.items()},
        "report": MetadataValue.path(store.uri("latest.html")),
        "report_snapshot": MetadataValue.path(store.uri(f"reports/{stamp}/report.html")),
        "alerts_per_day_plot": MetadataValue.md(f"![alerts per day](data:image/png;base64,{report.plot_daily_png_b64})"),
    })


@asset(group_name="reporting", deps=["fraud_flags"], kinds={"email"}, owners=["team:fraud-ops"],
       description="One email per flagged transaction to the cardholder (outbox .eml files locally, SMTP when "
                   "FRAUD_SMTP_HOST is set); recorded in customer_alert so a rerun never sends twice.")
def customer_alerts(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()
    version, _ = _promoted(fraud)
    result = send_alerts(engine, flagged_transactions(engine, version), mailer_for(settings), settings.mail_from)
    if result.failed:
        context.log.warning(f"{result.failed} alerts could not be delivered; they stay pending for the next run")
    return MaterializeResult(metadata={"queued": result.queued, "sent": result.sent, "failed": result.failed,
                                       "skipped_opted_out": result.skipped_opted_out,
                                       "outbox": MetadataValue.path(str(settings.outbox_dir))})
