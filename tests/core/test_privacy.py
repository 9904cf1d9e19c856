import pytest

from fraud.core.privacy import card_token, mask_card, normalize_card_number


@pytest.mark.parametrize(
    "raw, digits",
    [
        ("4111111111111111", "4111111111111111"),
        ("373000000000000.0", "373000000000000"),
        ("3.73E+14", "373000000000000"),
        ("4111 1111 1111 1111", "4111111111111111"),
        (4100000000000, "4100000000000"),
    ],
)
def test_card_numbers_as_written_in_real_files(raw, digits):
    assert normalize_card_number(raw) == digits


@pytest.mark.parametrize(
    "raw",
    [None, "", "abc", "-4111111111111111", "12.5", "1234", "inf", "-inf", "nan", "sNaN", "1e999999999999", "1e25"],
)
def test_invalid_card_numbers_are_rejected(raw):
    assert normalize_card_number(raw) is None


def test_token_is_keyed_and_deterministic():
    assert card_token("4111111111111111", b"k1") == card_token("4111111111111111", b"k1")
    assert card_token("4111111111111111", b"k1") != card_token("4111111111111111", b"k2")
    assert len(card_token("4111111111111111", b"k1")) == 64
    assert mask_card("1111") == "•••• 1111"


def test_luhn_scan_finds_card_numbers_only():
    from fraud.core.privacy import card_numbers_in, luhn_valid

    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    text = "paid with 4111111111111111, ref 4111111111111112, token ab12, phone 5551234, amex 378282246310005"
    assert card_numbers_in(text) == ["4111111111111111", "378282246310005"]
    assert card_numbers_in("x" + "4111111111111111" + "9") == []  # part of a longer number is not a card
    assert card_numbers_in("0.4111111111111111") == []  # nor the fraction of a float
    assert card_numbers_in("2eb0e4111111111111111fc9") == []  # nor digits inside a hex token
    assert card_numbers_in("4111111111111111.0") == ["4111111111111111"]  # a card written as a float is
