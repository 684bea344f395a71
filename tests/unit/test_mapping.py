"""Client event names to TikTok's standard names."""

from __future__ import annotations

import pytest

from tiktok_gateway.mapping import NameMapping, deterministic_event_id


@pytest.mark.parametrize(
    ("client", "tiktok"),
    [
        ("purchase", "CompletePayment"),
        ("view_item", "ViewContent"),
        ("add_to_cart", "AddToCart"),
        ("begin_checkout", "InitiateCheckout"),
        ("add_payment_info", "AddPaymentInfo"),
        ("add_to_wishlist", "AddToWishlist"),
        ("search", "Search"),
        ("sign_up", "CompleteRegistration"),
        ("generate_lead", "Lead"),
        ("subscribe", "Subscribe"),
        ("Order Completed", "CompletePayment"),
        ("Product Added", "AddToCart"),
        ("CompletePayment", "CompletePayment"),
        ("Purchase", "Purchase"),
        ("completeregistration", "CompleteRegistration"),
    ],
)
def test_builtin_names(client: str, tiktok: str) -> None:
    """GA4, Segment and TikTok names map to TikTok's standard names."""
    assert NameMapping().tiktok_name(client) == (tiktok, True)


def test_purchase_and_lead_names_are_configurable() -> None:
    """A destination can send Purchase and SubmitForm instead."""
    names = NameMapping(purchase_event="Purchase", lead_event="SubmitForm")
    assert names.tiktok_name("purchase") == ("Purchase", True)
    assert names.tiktok_name("generate_lead") == ("SubmitForm", True)


def test_unknown_names_pass_as_custom() -> None:
    """An unknown name is sent unchanged and flagged as custom."""
    assert NameMapping().tiktok_name("newsletter_popup") == ("newsletter_popup", False)


def test_overrides_win_over_the_builtin_table() -> None:
    """Config overrides are matched after the same normalisation as built-in names."""
    names = NameMapping(overrides={"Checkout Done": "CompletePayment", "purchase": "PlaceAnOrder"})
    assert names.tiktok_name("checkout-done") == ("CompletePayment", True)
    assert names.tiktok_name("purchase") == ("PlaceAnOrder", True)


def test_deterministic_event_id() -> None:
    """The pixel can compute the same id: order id, underscore, TikTok event name."""
    assert deterministic_event_id("100045", "CompletePayment") == "100045_CompletePayment"
