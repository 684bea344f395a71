"""Deterministic benchmark events, the same for every contender.

Two shapes: a shop's funnel (view_item, add_to_cart, begin_checkout, purchase per customer,
so a customer's email and phone recur four times, as they do in real traffic), and the worst
case for caches (every event a new customer).
"""

from __future__ import annotations

import time
from typing import Any

FUNNEL = ("view_item", "add_to_cart", "begin_checkout", "purchase")


def customer(i: int) -> dict[str, str]:
    return {
        "email": f" Customer.{i}@Example.com ",
        "phone": f"+1 213 {200 + i // 10000 % 800:03d} {i % 10000:04d}",
        "external_id": f"cust-{i}",
        "ip": f"13.57.{i // 256 % 256}.{i % 256}",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/124.0 Safari/537.36",
    }


def event(i: int, *, unique_customers: bool = False) -> dict[str, Any]:
    """Event number i: from customer i // 4 in a funnel, or from customer i."""
    who = i if unique_customers else i // len(FUNNEL)
    price = 10 + i % 90
    return {
        "event": FUNNEL[i % len(FUNNEL)],
        "event_id": f"bench-{i}",
        "event_time": int(time.time()) - 60,
        "user": customer(who),
        "properties": {
            "order_id": f"order-{who}",
            "value": price * 2,
            "currency": "USD",
            "items": [{"item_id": f"sku-{i % 500}", "item_name": "socks", "price": price,
                       "quantity": 2}],
        },
        "page": {"url": "https://shop.example.com/checkout"},
    }


def events(count: int, *, unique_customers: bool = False) -> list[dict[str, Any]]:
    return [event(i, unique_customers=unique_customers) for i in range(count)]
