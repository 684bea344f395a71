"""Run inside pytt-events-api's own virtualenv: build, hash and serialise equivalent events."""

import json
import sys
import time

sys.path.insert(0, ".")
from pytt_events.context import Context, Page, User  # noqa: E402
from pytt_events.event import Event  # noqa: E402
from pytt_events.properties import Content, Properties  # noqa: E402

from bench import data  # noqa: E402

NAMES = {"view_item": "ViewContent", "add_to_cart": "AddToCart",
         "begin_checkout": "InitiateCheckout", "purchase": "CompletePayment"}


def build(raw):
    user = raw["user"]
    props = raw["properties"]
    item = props["items"][0]
    return Event(
        pixel_code="C0EXAMPLE0PIXEL00001", event=NAMES[raw["event"]], event_id=raw["event_id"],
        context=Context(
            user=User(email=user["email"].strip(), phone_number=user["phone"],
                      external_id=user["external_id"]),
            ip=user["ip"], user_agent=user["user_agent"], page=Page(url=raw["page"]["url"])),
        properties=Properties(
            contents=[Content(content_id=item["item_id"], content_name=item["item_name"],
                              price=item["price"], quantity=item["quantity"])],
            currency=props["currency"], value=props["value"]))


def main():
    count, unique, repeat = int(sys.argv[1]), bool(int(sys.argv[2])), int(sys.argv[3])
    events = data.events(count, unique_customers=unique)
    best = 0.0
    for _ in range(repeat):  # best of `repeat`, as for the other contenders
        started = time.perf_counter()
        for raw in events:
            json.dumps(build(raw).normalize_data(), default=str)
        best = max(best, count / (time.perf_counter() - started))
    print(round(best, 1))


if __name__ == "__main__":
    main()
