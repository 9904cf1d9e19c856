"""What the review app changes, each in one database transaction: an analyst's verdict on a case, a customer's
answer to an alert. Both go through fraud/db/labels.py `record_verdicts` (the label that counts, and `label_event`,
the verdicts' audit: who, when, what, with the note)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from fraud.db.cases import CaseSummary, case_in, case_transactions_in
from fraud.db.labels import LabelSource, Verdict, record_verdicts
from fraud.outreach.answers import Answer, SignedAnswer

MAX_NOTE = 2000


class CaseClosed(Exception):
    """The case had every label already (another analyst, a customer or a label file closed it first)."""


class CaseNotFound(Exception):
    pass


@dataclass(frozen=True)
class VerdictRecorded:
    case: CaseSummary
    verdict: Verdict
    transactions: int
    at: datetime


def record_case_verdict(
    engine: Engine, model_version: str, case_id: str, verdict: Verdict, username: str, note: str | None
) -> VerdictRecorded:
    """The verdict on every transaction of an open case, as the analyst `username`. Verdicts on one case are
    serialised (an advisory lock on its id), and the case is checked open inside the transaction that records the
    verdict: of two analysts posting at once, the second is refused with CaseClosed (unless the first was unsure)."""
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:case_id, 23))"), {"case_id": case_id})
        case = case_in(connection, model_version, case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if case.closed:
            raise CaseClosed(case_id)
        trans_nums = case_transactions_in(connection, model_version, case_id)
        at = record_verdicts(connection, trans_nums, verdict, LabelSource.ANALYST, username, note or None)
    return VerdictRecorded(case, verdict, len(trans_nums), at)


@dataclass(frozen=True)
class AlertLine:
    merchant: str
    amount: float
    event_time: datetime


@dataclass(frozen=True)
class AlertView:
    alert_id: int
    last4: str
    lines: list[AlertLine]
    answered: str | None  # "me" / "not_me" once answered
    answered_at: datetime | None


def alert_view(engine: Engine, alert_id: int) -> AlertView | None:
    """What a customer's answer page shows of the alert (as its email did), and its answer if it has one."""
    with engine.connect() as connection:
        head = (
            connection.execute(
                text("""
                SELECT a.id, k.last4, c.answer, c.answered_at FROM customer_alert a
                JOIN dim_card k ON k.card_token = a.card_token
                LEFT JOIN customer_answer c ON c.alert_id = a.id WHERE a.id = :id"""),
                {"id": alert_id},
            )
            .mappings()
            .one_or_none()
        )
        if head is None:
            return None
        lines = [
            AlertLine(row.merchant, row.amount, row.event_time)
            for row in connection.execute(
                text("""
                SELECT t.merchant, t.amount::float8 AS amount, t.event_time FROM customer_alert_transaction x
                JOIN fact_transaction t ON t.trans_num = x.trans_num WHERE x.alert_id = :id
                ORDER BY t.event_time, t.trans_num"""),
                {"id": alert_id},
            )
        ]
    return AlertView(head["id"], head["last4"], lines, head["answer"], head["answered_at"])


def record_answer(engine: Engine, signed: SignedAnswer) -> bool:
    """The customer's answer, once: `customer_answer` (its primary key is the alert) and a `customer` verdict on the
    alert's transactions ("No, it wasn't" = fraud, "Yes, it was me" = genuine), in one transaction. False, with
    nothing changed, when the alert was answered before (a replayed or second link)."""
    verdict = Verdict.FRAUD if signed.answer is Answer.NOT_ME else Verdict.GENUINE
    with engine.begin() as connection:
        first = connection.execute(
            text("""
            INSERT INTO customer_answer (alert_id, answer) VALUES (:id, :answer)
            ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id"""),
            {"id": signed.alert_id, "answer": signed.answer.value},
        ).scalar_one_or_none()
        if first is None:
            return False
        trans_nums = list(
            connection.execute(
                text("SELECT trans_num FROM customer_alert_transaction WHERE alert_id = :id ORDER BY trans_num"),
                {"id": signed.alert_id},
            ).scalars()
        )
        record_verdicts(connection, trans_nums, verdict, LabelSource.CUSTOMER, f"alert#{signed.alert_id}")
    return True
