"""Normalising and hashing customer data the way TikTok expects."""

from __future__ import annotations

import hashlib
import re

import phonenumbers
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType

from tiktok_gateway.identity import (
    _international_number,
    hash_email,
    hash_external_id,
    hash_phone,
    normalise_phone,
)

# TikTok's own worked examples (shared/tiktok-events-api.md, section 6).
TIKTOK_EMAIL_HASH = "848a771458438fc2ec420560d769fb9b9b86851ee338ec56517baabd79d3bb4f"
TIKTOK_PHONE_HASH = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd"
TIKTOK_EXTERNAL_ID_HASH = "80fba0ae1c48e3978e43e4efc365e14e12ea0c830ba8ba5b9a2dafc7e3f2ab8b"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def test_email_matches_tiktok_worked_example() -> None:
    """An email is trimmed and lower-cased before hashing, as in TikTok's example."""
    assert hash_email(" ALICE_abc@gmail.com ").value == TIKTOK_EMAIL_HASH


def test_phone_matches_tiktok_worked_example() -> None:
    """A phone is hashed in E.164 with the leading +, as in TikTok's example."""
    assert hash_phone("(+1)2133734253").value == TIKTOK_PHONE_HASH


def test_external_id_matches_tiktok_worked_example() -> None:
    """An external_id is hashed as-is after trimming, as in TikTok's example."""
    assert hash_external_id(" user_123 ").value == TIKTOK_EXTERNAL_ID_HASH


def test_external_id_can_be_lowercased() -> None:
    """The lowercase option hashes the lower-cased id."""
    expected = hashlib.sha256(b"user_abc").hexdigest()
    assert hash_external_id("USER_ABC", lowercase=True).value == expected
    assert hash_external_id("USER_ABC").value != expected


def test_already_hashed_values_pass_through_lowercased() -> None:
    """A 64-hex value is not hashed twice, only lower-cased."""
    upper = TIKTOK_EMAIL_HASH.upper()
    assert hash_email(upper).value == TIKTOK_EMAIL_HASH
    assert hash_phone(upper).value == TIKTOK_EMAIL_HASH
    assert hash_external_id(upper).value == TIKTOK_EMAIL_HASH


def test_invalid_email_is_dropped_with_a_reason() -> None:
    """Something that is not an email is never hashed and sent."""
    result = hash_email("alice at example dot com")
    assert result.value is None
    assert result.problem and "email" in result.problem


def test_national_phone_needs_a_region() -> None:
    """A national number is normalised with the default region, dropped without one."""
    assert hash_phone("(213) 373-4253", "US").value == TIKTOK_PHONE_HASH
    dropped = hash_phone("(213) 373-4253")
    assert dropped.value is None and dropped.problem and "region" in dropped.problem


def test_phone_with_00_prefix_and_separators() -> None:
    """International 00 prefixes and separators normalise to the same E.164 number."""
    assert normalise_phone("0044 20 7946 0958") == "+442079460958"
    assert normalise_phone("+44 (0)20 7946 0958") == "+442079460958"


def test_impossible_phone_is_dropped() -> None:
    """A number phonenumbers says is not valid is dropped, never sent raw."""
    assert hash_phone("+1 000 000 0000").value is None
    assert hash_phone("call me maybe").value is None


emails = st.emails()
phones = st.from_regex(r"\+1 ?\(?[2-9][0-9]{2}\)? ?[2-9][0-9]{2}-?[0-9]{4}", fullmatch=True)


@given(emails)
def test_no_raw_email_reaches_the_output(raw: str) -> None:
    """Whatever the email, the output is a SHA-256 hex or nothing, never the input."""
    result = hash_email(raw)
    if result.value is not None:
        assert HEX64.match(result.value)
        assert raw.strip().lower() not in result.value


@given(phones)
def test_no_raw_phone_reaches_the_output(raw: str) -> None:
    """Whatever the phone, the output is a SHA-256 hex or nothing, never the digits."""
    result = hash_phone(raw)
    if result.value is not None:
        assert HEX64.match(result.value)
        digits = "".join(ch for ch in raw if ch.isdigit())
        assert digits not in result.value or len(digits) < 6


def _general_path(number: str) -> str | None:
    """phonenumbers' own answer, with no fast path: parse, validate, format."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _every_regions_examples() -> list[str]:
    numbers = []
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE,
                     PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(phonenumbers.format_number(
                    example, phonenumbers.PhoneNumberFormat.E164))
    return numbers


def test_fast_path_agrees_with_phonenumbers_on_every_regions_examples() -> None:
    """Numbers already in E.164 take the fast path; it must give phonenumbers' own answer."""
    examples = _every_regions_examples()
    assert len(examples) > 400
    fast = [n for n in examples if _international_number(n[1:]) is not None]
    assert len(fast) > len(examples) / 2  # the fast path is the common case, not a corner
    for number in examples:
        # With a national prefix, a trunk zero and a digit changed: valid and invalid cases.
        cc = str(phonenumbers.parse(number).country_code)
        variants = [number, number[:-1] + str((int(number[-1]) + 1) % 10), number + "1",
                    "+" + cc + "0" + number[1 + len(cc):], "+" + cc + "1" + number[1 + len(cc):]]
        for variant in variants:
            normalise_phone.cache_clear()
            assert normalise_phone(variant) == _general_path(variant), variant


@given(st.from_regex(r"\+[1-9][0-9]{3,16}", fullmatch=True))
def test_fast_path_agrees_with_phonenumbers_on_any_digits(number: str) -> None:
    normalise_phone.cache_clear()
    assert normalise_phone(number) == _general_path(number)


def test_a_refused_event_is_kept_with_nothing_personal_in_it() -> None:
    """What the inspector keeps of a rejected event, in the shape Segment sends: identifying
    keys emptied (their lengths kept), emails and phone numbers elsewhere removed."""
    import json

    from tiktok_gateway.identity import redacted

    body = {"type": "track", "event": "Order Completed", "userId": "cust-991",
            "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0",
                        "traits": {"email": "Jane.Doe@Example.com", "phone": "+1 213 373 4253"},
                        "page": {"url": "https://shop.example/thanks?email=jane@example.com"}},
            "properties": {"order_id": "50314b8e", "total": "27.50", "currency": "EURO",
                           "note": "call me on +1 213 373 4253"}}
    kept = redacted(body)
    for raw in ("Jane.Doe", "jane@example.com", "203.0.113.9", "373 4253", "cust-991"):
        assert raw not in kept, raw
    parsed = json.loads(kept)
    assert parsed["properties"]["currency"] == "EURO" and parsed["properties"]["order_id"] == "50314b8e"
    assert parsed["context"]["traits"]["email"] == "[removed: 20 characters]"
    deep: dict[str, object] = {"v": "jane@example.com"}
    for _ in range(40):
        deep = {"d": deep}
    assert "jane@" not in redacted({"properties": deep})
    assert len(redacted({"properties": {"note": "x" * 900, "more": "y" * 900}}, 100)) < 120
