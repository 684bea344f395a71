"""Normalise and SHA-256 hash customer data exactly as TikTok expects.

Raw personal data ends here: every function returns either a lower-case hex SHA-256
or nothing, plus a reason when a value was dropped. Rules (see docs/events.md):

* email: trim, lowercase, then hash; a value that is not an email is dropped;
* phone: E.164 with the leading `+` (via `phonenumbers`, with a default region for
  national formats), then hash; an unparseable or impossible number is dropped;
* external_id: trim (optionally lowercase), then hash;
* a value that already is a 64-character hex SHA-256 passes through lower-cased.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from .tiktok.schema import SHA256_HEX_ANY_CASE

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Characters phonenumbers ignores; removing them before the cache lookup changes no result
# but lets "+1 213-373-4253" and "+12133734253" share one cache entry. Parentheses stay:
# in "+44 (0)20" they mark a trunk prefix.
_SEPARATORS = re.compile(r"[\s\-.]")


@dataclass(frozen=True)
class Hashed:
    """The result of hashing one value: the hash, or why the value was dropped."""

    value: str | None
    problem: str | None = None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    return bool(SHA256_HEX_ANY_CASE.match(value))


def hash_email(raw: str) -> Hashed:
    """Trim, lowercase and hash an email; keep an existing hash."""
    value = raw.strip()
    if is_sha256(value):
        return Hashed(value.lower())
    value = value.lower()
    if not _EMAIL.match(value):
        return Hashed(None, "not a valid email address; dropped, never sent")
    return Hashed(sha256_hex(value))


def hash_phone(raw: str, region: str | None = None) -> Hashed:
    """Normalise a phone number to E.164 with `+` and hash it; keep an existing hash."""
    value = raw.strip()
    if is_sha256(value):
        return Hashed(value.lower())
    e164 = normalise_phone(_SEPARATORS.sub("", value), region)
    if e164 is None:
        hint = "" if region or value.startswith(("+", "00")) else " (no default region set)"
        return Hashed(None, f"not a valid phone number{hint}; dropped, never sent")
    return Hashed(sha256_hex(e164))


@lru_cache(maxsize=65536)
def normalise_phone(raw: str, region: str | None = None) -> str | None:
    """E.164 (`+12133734253`) for a phone number, or None when it is not a valid number.

    Cached: parsing with phonenumbers is the slowest step of a transform, and shops send
    the same customers' numbers again and again (a funnel sends one number with every
    event). The cache lives in memory only, like the event being processed.
    """
    candidate = raw
    if raw.startswith("00"):
        candidate = "+" + raw[2:]
    try:
        parsed = phonenumbers.parse(candidate, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def hash_external_id(raw: str, *, lowercase: bool = False) -> Hashed:
    """Trim (and optionally lowercase) an external id, then hash; keep an existing hash."""
    value = raw.strip()
    if not value:
        return Hashed(None, "empty; dropped")
    if is_sha256(value):
        return Hashed(value.lower())
    return Hashed(sha256_hex(value.lower() if lowercase else value))
