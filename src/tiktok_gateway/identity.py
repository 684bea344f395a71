"""Normalise and SHA-256 hash customer data exactly as TikTok expects.

Raw personal data ends here: every function returns either a lower-case hex SHA-256
or nothing, plus a reason when a value was dropped; `hash_user` builds TikTok's whole
`user` object this way, with IP addresses in their canonical text. Rules (docs/events.md):

* email: trim, lowercase, then hash; a value that is not an email is dropped;
* phone: E.164 with the leading `+` (via `phonenumbers`, with a default region for
  national formats), then hash; an unparseable or impossible number is dropped;
* external_id: trim (optionally lowercase), then hash;
* a value that already is a 64-character hex SHA-256 passes through lower-cased.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import orjson
import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc

from .events import User
from .exceptions import FieldError
from .tiktok.schema import SHA256_HEX_ANY_CASE

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Characters phonenumbers ignores; removing them before the cache lookup changes no result
# but lets "+1 213-373-4253" and "+12133734253" share one cache entry. Parentheses stay:
# in "+44 (0)20" they mark a trunk prefix.
_SEPARATORS = re.compile(r"[\s\-.]")
# "+" and ASCII digits only, as a shop's checkout usually stores numbers: the fast path's input.
_INTERNATIONAL = re.compile(r"\+[1-9][0-9]{3,16}")
_NSN_LENGTH = (2, 17)  # the national number lengths phonenumbers.parse accepts


@dataclass(frozen=True)
class Hashed:
    """The result of hashing one value: the hash, or why the value was dropped (no hash and
    no problem: the value was blank, which counts as absent)."""

    value: str | None
    problem: str | None = None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    return bool(SHA256_HEX_ANY_CASE.match(value))


# The hash functions are cached on the raw value: a shop's customers come back (a funnel sends
# the same email with every event), and a lookup costs a tenth of normalising and hashing.
# Like the event being processed, the caches live in memory only and are bounded.
CACHE_SIZE = 65536


@lru_cache(maxsize=CACHE_SIZE)
def hash_email(raw: str) -> Hashed:
    """Trim, lowercase and hash an email; keep an existing hash."""
    value = raw.strip()
    if not value:
        return Hashed(None)
    if is_sha256(value):
        return Hashed(value.lower())
    value = value.lower()
    if not _EMAIL.match(value):
        return Hashed(None, "not a valid email address; dropped, never sent")
    return Hashed(sha256_hex(value))


@lru_cache(maxsize=CACHE_SIZE)
def hash_phone(raw: str, region: str | None = None) -> Hashed:
    """Normalise a phone number to E.164 with `+` and hash it; keep an existing hash.

    `region`: how to read a national number (ISO 3166 alpha-2): the order's country, or the
    destination's `phone_region`.
    """
    value = raw.strip()
    if not value:
        return Hashed(None)
    if is_sha256(value):
        return Hashed(value.lower())
    e164 = normalise_phone(_SEPARATORS.sub("", value), region)
    if e164 is None:
        hint = "" if region or value.startswith(("+", "00")) else " (no default region set)"
        return Hashed(None, f"not a valid phone number{hint}; dropped, never sent")
    return Hashed(sha256_hex(e164))


@lru_cache(maxsize=CACHE_SIZE)
def normalise_phone(raw: str, region: str | None = None) -> str | None:
    """E.164 (`+12133734253`) for a phone number, or None when it is not a valid number.

    Cached: parsing with phonenumbers is the slowest step of a transform, and shops send
    the same customers' numbers again and again (a funnel sends one number with every
    event). The cache lives in memory only, like the event being processed.
    """
    candidate = raw
    if raw.startswith("00"):
        candidate = "+" + raw[2:]
    if _INTERNATIONAL.fullmatch(candidate):
        fast = _international_number(candidate[1:])
        if fast is not None:
            number, metadata = fast
            valid = (_surely_valid(number, metadata, metadata.country_code or 0)
                     or phonenumbers.is_valid_number(number))
            return candidate if valid else None
    try:
        parsed = phonenumbers.parse(candidate, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _international_number(digits: str) -> tuple[phonenumbers.PhoneNumber, PhoneMetadata] | None:
    """The number `phonenumbers.parse("+" + digits)` returns, built without its general parser.

    Only for the case where every step of `parse` provably leaves the digits as they are:
    the country code is the first known 1-3 digit prefix (as parse takes it), the rest does
    not start with 0 (no Italian leading zero to record), its length is one parse accepts,
    and the country's national-prefix pattern does not match at its start (so parse strips
    nothing). Anything else returns None and takes the general path. E.164 of the result is
    then "+" + digits; `tests/unit/test_identity.py` checks both paths agree on every
    region's example numbers and on random digit strings.
    """
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    rest = digits[length:]
    if not _NSN_LENGTH[0] <= len(rest) <= _NSN_LENGTH[1] or rest[0] == "0":
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code))
    if metadata is None:
        return None
    prefix = metadata.national_prefix_for_parsing
    if prefix and re.match(prefix, rest):
        return None
    return phonenumbers.PhoneNumber(country_code=code, national_number=int(rest)), metadata


def _surely_valid(number: phonenumbers.PhoneNumber, metadata: PhoneMetadata, code: int) -> bool:
    """A sufficient condition for `phonenumbers.is_valid_number`, at a third of its cost.

    The library finds the number's region (the country's main region, when it is the only
    one or needs no leading-digit test) and then its type, trying eight rare types before
    fixed line and mobile; the number is valid when a type matches. A number in the general
    pattern that matches the fixed-line or mobile pattern of that region therefore is valid.
    False means "not proven here": the caller asks the library.
    """
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())
    if len(regions) > 1 and metadata.leading_digits is not None:
        return False
    national = str(number.national_number)
    return _matches(national, metadata.general_desc) and (
        _matches(national, metadata.fixed_line) or _matches(national, metadata.mobile))


def _matches(national: str, desc: PhoneNumberDesc | None) -> bool:
    """What phonenumbers' own description match does: length, then the whole pattern."""
    if desc is None or not desc.national_number_pattern:
        return False
    if desc.possible_length and len(national) not in desc.possible_length:
        return False
    return _pattern(desc.national_number_pattern).fullmatch(national) is not None


@lru_cache(maxsize=1024)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


@lru_cache(maxsize=CACHE_SIZE)
def hash_external_id(raw: str, lowercase: bool = False) -> Hashed:
    """Trim (and optionally lowercase) an external id, then hash; keep an existing hash."""
    value = raw.strip()
    if not value:
        return Hashed(None)
    if is_sha256(value):
        return Hashed(value.lower())
    return Hashed(sha256_hex(value.lower() if lowercase else value))


def clear_caches() -> None:
    """Forget every cached value (benchmarks measure first sight of each customer this way)."""
    for cached in (hash_email, hash_phone, normalise_phone, hash_external_id):
        cached.cache_clear()


_USER_FIELDS = frozenset(User.__annotations__)


def hash_user(user: User, warnings: list[FieldError], *, phone_region: str | None = None,
              lowercase_external_id: bool = False) -> dict[str, Any]:
    """TikTok's `user` object: email, phone, external_id hashed; the rest as received.

    Each value dropped on the way (an invalid email, an impossible number) is named in
    `warnings`; raw values never leave this function.
    """
    out: dict[str, Any] = {}
    emails, phones, external_ids = user.get("email"), user.get("phone"), user.get("external_id")
    if emails:
        _put_hashes(out, "email", [hash_email(v) for v in emails], warnings)
    if phones:
        region = _region(user.get("country")) or phone_region
        _put_hashes(out, "phone", [hash_phone(v, region) for v in phones], warnings)
    if external_ids:
        _put_hashes(out, "external_id",
                    [hash_external_id(v, lowercase_external_id) for v in external_ids], warnings)
    for key in ("ttclid", "ttp", "user_agent", "locale"):
        value = user.get(key)
        if value:
            out[key] = value
    ip = user.get("ip")
    if ip:
        _add_ip(ip, out, warnings)
    if len(user) > len(out):  # cheap test first: unknown keys are rare
        for key in sorted(set(user) - _USER_FIELDS):
            warnings.append(FieldError(f"user.{key}", "unknown user field: not sent"))
    return out


def _put_hashes(out: dict[str, Any], key: str, results: list[Hashed],
                warnings: list[FieldError]) -> None:
    """Keep each distinct hash; name each dropped value (`user.email.1`) in a warning."""
    if len(results) == 1 and results[0].value is not None:  # the usual case, kept short
        out[key] = [results[0].value]
        return
    hashes: list[str] = []
    for i, result in enumerate(results):
        if result.value is None:
            if result.problem:  # a blank value is absent, not invalid
                path = f"user.{key}" if len(results) == 1 else f"user.{key}.{i}"
                warnings.append(FieldError(path, result.problem))
        elif result.value not in hashes:
            hashes.append(result.value)
    if hashes:
        out[key] = hashes


def _region(country: Any) -> str | None:
    """An ISO 3166 alpha-2 code from the order's country, for reading national numbers."""
    if isinstance(country, str) and len(country.strip()) == 2 and country.strip().isalpha():
        return country.strip().upper()
    return None


def _add_ip(ip: str, out: dict[str, Any], warnings: list[FieldError]) -> None:
    normalised = normalise_ip(ip)
    if normalised is None:
        warnings.append(FieldError("user.ip", "not a valid IPv4 or IPv6 address; dropped"))
    elif not is_public_ip(normalised):
        warnings.append(FieldError("user.ip", f"{normalised} is a private, loopback, link-local "
                                              "or unspecified address, not the shopper's; dropped"))
    else:
        out["ip"] = normalised


# Addresses that are never a shopper's own: a backend's, a proxy's, or a platform's placeholder
# (Shopify sends 0.0.0.0 when it does not know).
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


@lru_cache(maxsize=16384)
def is_public_ip(canonical: str) -> bool:
    """Whether an address (in canonical text) could be a shopper's public address."""
    if _CANONICAL_IPV4.fullmatch(canonical):  # most traffic: no ipaddress objects needed
        return _is_public_ipv4(canonical)
    ip = ipaddress.ip_address(canonical)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
        return False
    return not any(ip in net for net in _NOT_PUBLIC if net.version == ip.version)


def _is_public_ipv4(dotted: str) -> bool:
    """is_public_ip for a canonical dotted quad, from its first two octets: the same answer
    as ipaddress gives (loopback, link-local, unspecified, multicast, the private ranges),
    which the tests check over random and edge addresses, at a tenth of the cost."""
    first, second, _ = dotted.split(".", 2)
    a, b = int(first), int(second)
    return not (a in (10, 127) or 224 <= a <= 239 or (a == 169 and b == 254)
                or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168)
                or dotted == "0.0.0.0")


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted-quad IPv4 without leading zeros: already its own canonical text.
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@lru_cache(maxsize=16384)
def normalise_ip(ip: str) -> str | None:
    """The canonical text of an IPv4 or IPv6 address (cached: shops see the same IPs often)."""
    if _CANONICAL_IPV4.fullmatch(ip):
        return ip
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


# --- personal data where it does not belong -------------------------------------------------

# An email anywhere in a text; a phone number written internationally; a key that names one.
_EMAIL_IN_TEXT = re.compile(r"[^\s@/?&=:;,<>\"']+@[^\s@/?&=:;,<>\"']+\.[A-Za-z]{2,}")
_PHONE_TEXT = re.compile(r"\s*\+\s*\d[\d\s().-]{6,20}\s*")
_PERSONAL_KEY = re.compile(r"e-?mail|phone|mobile|\btel\b|^tel|msisdn", re.IGNORECASE)


def looks_personal(key: str, value: Any) -> bool:
    """Whether a custom value (or a URL parameter) holds an email address or a phone number."""
    if isinstance(value, str):
        return bool(value.strip()) and (
            _EMAIL_IN_TEXT.search(value) is not None or _PHONE_TEXT.fullmatch(value) is not None
            or _PERSONAL_KEY.search(key) is not None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _PERSONAL_KEY.search(key) is not None
    return False


def scrub(value: Any, path: str, warnings: list[FieldError], depth: int = 0) -> Any:
    """`value` without the strings that hold personal data, each removal named in a warning."""
    if isinstance(value, dict) and depth < 32:
        clean = {}
        for key, item in value.items():
            if looks_personal(str(key), item):
                warnings.append(FieldError(f"{path}.{key}", _REMOVED))
            else:
                clean[key] = scrub(item, f"{path}.{key}", warnings, depth + 1)
        return clean
    if isinstance(value, list) and depth < 32:
        kept = []
        for index, item in enumerate(value):
            if looks_personal("", item):
                warnings.append(FieldError(f"{path}.{index}", _REMOVED))
            else:
                kept.append(scrub(item, f"{path}.{index}", warnings, depth + 1))
        return kept
    return value


def scrub_url(url: str, path: str, warnings: list[FieldError]) -> str:
    """A page URL without the query parameters (or fragment) that hold personal data."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url  # the usual case: nothing to parse
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not looks_personal(k, v)]
    removed = sorted({k for k, v in pairs if looks_personal(k, v)})
    fragment = parts.fragment
    if fragment and _EMAIL_IN_TEXT.search(unquote(fragment)):
        fragment, removed = "", [*removed, "#fragment"]
    netloc, where = parts.netloc, parts.path
    if _EMAIL_IN_TEXT.search(unquote(where)):
        where, removed = "/", [*removed, "path"]
    if not removed:
        return url
    warnings.append(FieldError(path, f"{', '.join(removed)} held an email address or phone "
                                     "number: removed, raw personal data is never sent"))
    return urlunsplit((parts.scheme, netloc, where, urlencode(kept), fragment))


_REMOVED = "looks like an email address or phone number: removed, raw personal data is never sent"


# --- what is kept of an event refused at ingest ------------------------------------------

MAX_REDACTED_BYTES = 16_384
MAX_REDACTED_DEPTH = 16
_DIGIT_RUN = re.compile(r"\+?\d[\d\s().-]{5,}\d")  # seven digits or more, as phones are written
_IDENTIFYING_KEY = re.compile(r"^(user|traits|ip|ip_?address|user_?agent|ttp|ttclid|"
                              r"external_?id|user_?id|anonymous_?id|client_?id)$", re.IGNORECASE)


def redacted(raw: Any, max_bytes: int = MAX_REDACTED_BYTES) -> str:
    """A refused event as it came, for the inspector, with nothing personal in it: the user
    object and every identifying key emptied (its values' lengths kept, to show what was
    sent), and any other value that holds an email or a phone number removed. At most
    `max_bytes` characters of JSON."""
    text = orjson.dumps(_redact(raw, 0)).decode()
    if len(text) > max_bytes:
        return text[:max_bytes] + " …(cut)"
    return text


def _redact(value: Any, depth: int) -> Any:
    if depth > MAX_REDACTED_DEPTH:
        return "[removed: nested too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in list(value.items())[:200]:
            name = str(key)[:100]
            if _IDENTIFYING_KEY.match(name):
                out[name] = _emptied(item, depth)
            elif looks_personal(name, item):
                out[name] = "[removed: personal data]"
            else:
                out[name] = _redact(item, depth + 1)
        return out
    if isinstance(value, list):
        return [("[removed: personal data]" if looks_personal("", item) else
                 _redact(item, depth + 1)) for item in value[:200]]
    if isinstance(value, str):
        # Stricter than for events sent: a phone number inside free text goes too.
        return _DIGIT_RUN.sub("[removed]", value[:1000])
    return value


def _emptied(value: Any, depth: int = 0) -> Any:
    if depth > MAX_REDACTED_DEPTH:
        return "[removed: nested too deep]"
    if isinstance(value, dict):
        return {str(k)[:100]: _emptied(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_emptied(v, depth + 1) for v in value[:20]]
    if value is None or isinstance(value, bool):
        return value
    return f"[removed: {len(str(value))} characters]"
