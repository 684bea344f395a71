"""`tiktok-gateway erase`: a customer's identifiers hashed the way every destination does."""

from __future__ import annotations

from collections.abc import Iterable

from ..config import Settings
from ..identity import hash_email, hash_external_id, hash_phone


def customer_hashes(settings: Settings, emails: Iterable[str], phones: Iterable[str],
                    external_ids: Iterable[str]) -> set[str]:
    """Every hash the gateway may have stored for these values: a phone read with each
    destination's region, an external_id with each destination's case rule."""
    regions = {d.phone_region for d in settings.destinations} | {None}
    lowercase = {d.lowercase_external_id for d in settings.destinations} | {False}
    found = {hash_email(e).value for e in emails}
    found |= {hash_phone(p, region).value for p in phones for region in regions}
    found |= {hash_external_id(x, lower).value for x in external_ids for lower in lowercase}
    return {h for h in found if h}
