"""The alert email rendered from hand-made alerts (no database): why we are asking per payment, the answer links as
text and as table-based buttons, the advice kept, and an email without links."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, date, datetime, timedelta

from fraud.outreach.alerts import AnswerLinkSigner
from fraud.outreach.answers import Answer, verify
from fraud.outreach.notify import UNUSUAL, AlertEmail, AlertLine, render

KEY = b"k" * 32
SENT = datetime(2047, 1, 3, 12, tzinfo=UTC)
LINES = (
    AlertLine(
        'fraud_<b>Shop</b> "A"',
        912.5,
        datetime(2047, 1, 3, 23, 12, tzinfo=UTC),
        ("Amount 912.50, 8.3 times this card's 30-day average of 110.00", "First purchase at this merchant in 30 days"),
    ),
    AlertLine("fraud_Gas", 12.0, datetime(2047, 1, 3, 23, 30, tzinfo=UTC)),
)


def _parts(message) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in message.walk() if p.get_content_maintype() == "text"}


def _alert(links=None) -> AlertEmail:
    return AlertEmail("card:2047-01-03", "email", date(2047, 1, 3), "ann@example.com", "Ann", "1234", LINES, links)


def test_the_email_says_why_and_carries_both_answer_links():
    links = AnswerLinkSigner("https://review.example", KEY, 14).links(42, SENT)
    assert links.expires_at == SENT + timedelta(days=14)
    parts = _parts(render(_alert(links), "alerts@fraud-platform.example"))
    text, html = parts["text/plain"], parts["text/html"]

    assert (
        '  - 2047-01-03 23:12 UTC  $912.50  at <b>Shop</b> "A"\n'
        "    Why we are asking: Amount 912.50, 8.3 times this card's 30-day average of 110.00. "
        "First purchase at this merchant in 30 days.\n"
    ) in text
    assert f"    Why we are asking: {UNUSUAL}.\n" in text
    assert f"  Yes, it was me:  {links.me}\n  No, it wasn't:   {links.not_me}\n" in text
    assert "The links work until 17 January 2047, 12:00 UTC." in text
    for advice in ("call the number on the back of your card", "We will never ask for your PIN"):
        assert advice in text and advice in html

    # HTML: the phrases escaped, the links as buttons of a presentation table (inline styles, bgcolor for Outlook)
    assert "Why we are asking: Amount 912.50, 8.3 times this card&#39;s 30-day average of 110.00." in html
    assert "&lt;b&gt;Shop&lt;/b&gt; &#34;A&#34;" in html and "<b>Shop</b>" not in html
    buttons = html[html.index('<table role="presentation" cellpadding="0"') :]
    buttons = buttons[: buttons.index("</table>")]
    hrefs = [html_lib.unescape(h) for h in re.findall(r'<a href="([^"]+)"', buttons)]
    assert hrefs == [links.me, links.not_me]
    assert 'bgcolor="#2f7a4f"' in buttons and 'bgcolor="#c8453b"' in buttons
    assert ">Yes, it was me</a>" in buttons and ">No, it wasn&#39;t</a>" in buttons
    for url, answer in ((links.me, Answer.ME), (links.not_me, Answer.NOT_ME)):
        query = dict(pair.split("=", 1) for pair in url.split("?", 1)[1].split("&"))
        assert url.startswith("https://review.example/answer?")
        signed = verify(KEY, query["alert"], query["answer"], query["expires"], query["sig"], SENT)
        assert (signed.alert_id, signed.answer) == (42, answer)


def test_an_email_without_links_keeps_the_old_advice():
    parts = _parts(render(_alert(), "alerts@fraud-platform.example"))
    for part in parts.values():
        assert "/answer?" not in part and "Yes, it was me" not in part
    assert "If you made these payments, you need do nothing." in parts["text/plain"]
    assert "Why we are asking:" in parts["text/html"]
