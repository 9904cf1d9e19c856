"""The stakeholder report: one self-contained HTML file (plots embedded, no external assets)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from fraud import plots
from fraud.privacy import mask_card

_env = Environment(loader=PackageLoader("fraud", "templates"), autoescape=select_autoescape(["html", "j2"]))


@dataclass(frozen=True)
class Report:
    html: str
    flagged_csv: str
    headline: dict[str, object]
    plot_daily_png_b64: str


def build_report(scored: pd.DataFrame, flagged: pd.DataFrame, metadata: dict, budget: int, top_n: int = 25) -> Report:
    """scored: every scored transaction of the model; flagged: flagged ones joined to card and merchant."""
    scored = scored.assign(day=pd.to_datetime(scored["event_time"], utc=True).dt.date, amount=scored["amount"].astype(float))
    daily = scored.groupby("day").agg(transactions=("trans_num", "size"), flagged=("flagged", "sum")).reset_index()
    labelled = scored["is_fraud"].dropna().astype(bool)
    headline = {
        "transactions": f"{len(scored):,}",
        "alerts raised": f"{int(scored['flagged'].sum()):,}",
        "alerts per day": round(float(daily["flagged"].mean()), 1) if len(daily) else 0.0,
        "labelled fraud rate": f"{labelled.mean():.2%}" if len(labelled) else "n/a",
        "flagged amount": f"{scored.loc[scored['flagged'], 'amount'].sum():,.2f}",
    }
    by_category = (scored.assign(frauds=scored["is_fraud"].fillna(False).astype(bool))
                   .groupby("category").agg(transactions=("trans_num", "size"), flagged=("flagged", "sum"),
                                             frauds=("frauds", "sum"), amount=("amount", "sum"))
                   .sort_values("flagged", ascending=False).reset_index())
    top = flagged.head(top_n).assign(card=flagged["last4"].map(mask_card), amount=flagged["amount"].astype(float),
                                     event_time=pd.to_datetime(flagged["event_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M"))
    metric_rows = [(name, "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else value))
                   for name, value in metadata.get("metrics", {}).items()]
    plot_daily = plots.daily_volume(daily, budget)
    html = _env.get_template("report.html.j2").render(
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        model_version=metadata.get("version", "?"),
        data_until=str(pd.to_datetime(scored["event_time"], utc=True).max()) if len(scored) else "n/a",
        headline=list(headline.items()),
        plot_daily=plot_daily,
        plot_scores=plots.score_distribution(scored["score"], float(metadata.get("threshold", 0.5))),
        model_metrics=metric_rows,
        by_category=by_category.to_dict("records"),
        top_flagged=top.to_dict("records"),
    )
    csv = flagged.assign(card=flagged["last4"].map(mask_card))[
        ["trans_num", "event_time", "card", "merchant", "category", "amount", "score", "model_version"]].to_csv(index=False)
    return Report(html=html, flagged_csv=csv, headline=headline, plot_daily_png_b64=plot_daily)
