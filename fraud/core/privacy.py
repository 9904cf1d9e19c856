"""Card tokenization: the only way a card number leaves the raw zone is as an HMAC token + last 4."""

from __future__ import annotations

import hashlib
import hmac
import re
from decimal import Decimal, InvalidOperation

_DIGITS = re.compile(r"^\d{8,19}$")


def normalize_card_number(value: object) -> str | None:
    """Digits of a card number as written in real files ("4.1E+12", "3.73e14", 4111...), else None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.startswith("-"):
        return None
    text = text.replace(" ", "").replace("-", "")  # "4111 1111 …" and "4111-1111-…" groupings
    if not text.isdigit():
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        # inf, NaN and absurd exponents are not card numbers (and must not crash or build huge integers)
        if not number.is_finite() or number <= 0 or number.adjusted() > 19 or number != number.to_integral_value():
            return None
        text = str(int(number))
    return text if _DIGITS.match(text) else None


def card_token(digits: str, key: bytes) -> str:
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()


def mask_card(last4: str) -> str:
    return f"•••• {last4}"


# a card number stands alone: digits inside a hex token or an identifier, or after a decimal point (the
# fraction of a float), are not one
_CANDIDATE = re.compile(r"(?<![\w.])\d{13,19}(?!\w)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_numbers_in(text: str) -> list[str]:
    """13-19-digit runs that pass the Luhn check: what a leak scan looks for."""
    return [match for match in _CANDIDATE.findall(text) if luhn_valid(match)]
