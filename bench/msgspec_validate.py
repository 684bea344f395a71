"""Run in a virtualenv with msgspec: typed decoding of our inbound event shape straight from
bytes, the alternative to orjson + pydantic-core that the validation benchmark measures.

The structs mirror `tiktok_gateway.events` as far as msgspec can say it without hooks:
lenient (`strict=False`: "46.00" decodes as a float), strings or lists of strings for the
user's ids, non-negative amounts. What it cannot say (numbers coerced to strings, stripped
whitespace, event times in three forms, ISO 4217 currencies, our wording of errors) would be
a second pass in Python, so this is a lower bound of what validating with msgspec costs.

Usage: python msgspec_validate.py EVENTS.jsonl BAD.jsonl REPEAT; prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import msgspec

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Text = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*$")]


class User(msgspec.Struct, omit_defaults=True):
    email: str | list[str] | None = None
    phone: str | list[str] | None = None
    external_id: str | list[str] | None = None
    ttclid: str | None = None
    ttp: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    country: str | None = None


class Item(msgspec.Struct, omit_defaults=True):
    item_id: str | None = None
    item_name: str | None = None
    item_category: str | None = None
    item_brand: str | None = None
    price: NonNegative | None = None
    quantity: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Properties(msgspec.Struct, omit_defaults=True):
    value: NonNegative | None = None
    currency: Annotated[str, msgspec.Meta(min_length=3, max_length=3)] | None = None
    items: list[Item] | None = None
    content_ids: list[str] | None = None
    order_id: Annotated[Text, msgspec.Meta(max_length=200)] | None = None


class Page(msgspec.Struct, omit_defaults=True):
    url: str | None = None
    referrer: str | None = None


class Event(msgspec.Struct, omit_defaults=True):
    event: Annotated[Text, msgspec.Meta(min_length=1, max_length=100)]
    event_id: Annotated[Text, msgspec.Meta(max_length=256)] | None = None
    event_time: int | float | str | None = None
    user: User = msgspec.field(default_factory=User)
    properties: Properties = msgspec.field(default_factory=Properties)
    page: Page | None = None
    limited_data_use: bool | None = None
    test_event_code: str | None = None


def main() -> None:
    lines = open(sys.argv[1], "rb").read().splitlines()
    bad = open(sys.argv[2], "rb").read().splitlines()
    repeat = int(sys.argv[3])
    decoder = msgspec.json.Decoder(Event, strict=False)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            decoder.decode(line)
        best = min(best, time.perf_counter() - started)
    messages = []
    for line in bad:
        try:
            decoder.decode(line)
            messages.append("accepted")
        except msgspec.ValidationError as exc:
            messages.append(str(exc))
    print(json.dumps({"us_per_event": round(best / len(lines) * 1e6, 2), "errors": messages}))


if __name__ == "__main__":
    main()
