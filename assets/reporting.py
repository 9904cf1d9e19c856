from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, MetadataValue, asset

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.db.queries import alert_status_counts
from fraud.model import registry
from fraud.outreach.alerts import AlertPolicy, send_alerts
from fraud.outreach.mailers import mailer_for
from fraud.outreach.report import publish_report


def _promoted(fraud: FraudPlatform) -> tuple[str, dict]:
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        raise RuntimeError("no promoted model yet: materialize fraud_model first")
    return version, registry.load_metadata(store, settings.model_name, version)


@asset(
    group_name="reporting",
    # after the alerts: the report counts the emails sent
    deps=["fraud_flags", "customer_alerts"],
    # eager: a new fraud_flags materialization (a batch, a rescoring, a manual one) leads to the alerts, then this
    # report, in one run; updates made in that same run do not count again (assets/sensors.py, automation)
    automation_condition=AutomationCondition.eager(),
    kinds={"html", "s3"},
    owners=["team:fraud-ops"],
    code_version=CODE_VERSIONS["fraud_report"],
    description="Self-contained HTML report for stakeholders (plots embedded, no scripts) plus a CSV of flagged "
    "transactions, in the reports bucket under `reports/<timestamp>/` and as `latest.html`.",
)
def fraud_report(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    published = publish_report(fraud.engine(), fraud.settings())
    headline = published.report.headline
    return MaterializeResult(
        metadata={
            **{name: meta.number(value) if isinstance(value, float) else value for name, value in headline.items()},
            "report": MetadataValue.path(published.latest),
            "report_snapshot": MetadataValue.path(published.snapshot),
            "flagged_csv": MetadataValue.path(published.csv),
            "alerts_per_day_plot": meta.image(published.report.plot_alerts_png_b64, "alerts per day"),
        }
    )


@asset(
    group_name="reporting",
    deps=["fraud_flags"],
    automation_condition=AutomationCondition.eager(),
    kinds={"email"},
    owners=["team:fraud-ops"],
    code_version=CODE_VERSIONS["customer_alerts"],
    description="One email per card and day with flagged transactions, to the cardholder (outbox `.eml` files "
    "locally, SMTP when `FRAUD_SMTP_HOST` is set, SES in aws mode); queued in `customer_alert` under a "
    "unique group key so a rerun never sends twice; failed deliveries stay pending for the next run.",
)
def customer_alerts(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()
    version, _ = _promoted(fraud)
    mailer = mailer_for(settings)
    policy = AlertPolicy.from_settings(settings)
    result = send_alerts(engine, version, mailer, policy)
    if result.failed or result.deferred:
        context.log.warning(
            f"{result.failed} alerts failed and {result.deferred} were not tried (server down?); "
            f"they stay pending for the next run. Last error: {result.errors[-1] if result.errors else '-'}"
        )
    totals = alert_status_counts(engine, policy.channel)
    return MaterializeResult(
        metadata={
            "transport": mailer.name,
            "queued": result.queued,
            "sent": result.sent,
            "failed": result.failed,
            "deferred": result.deferred,
            "capped": result.capped,
            "skipped_opted_out": result.skipped_opted_out,
            "skipped_no_email": result.skipped_no_email,
            "pending_total": totals.get("pending", 0),
            "sent_total": totals.get("sent", 0),
            **({"outbox": MetadataValue.path(str(settings.outbox_dir))} if mailer.name == "outbox" else {}),
        }
    )
