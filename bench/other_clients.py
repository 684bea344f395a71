"""Run inside a contender's virtualenv: deliver N benchmark events to the sandbox."""

import sys
import time

sys.path.insert(0, ".")
from bench import data  # noqa: E402

PIXEL, TOKEN = "C0EXAMPLE0PIXEL00001", "bench-token-0123456789"


def pytt(url, count, bulk):
    import os

    os.environ.update(TIKTOK_ACCESS_TOKEN=TOKEN, TIKTOK_PIXEL_ID=PIXEL)
    from pytt_events.auth import TikTokAuth
    from pytt_events.tiktok_events_api import TikTokEventsApi

    from bench.pytt_transform import build

    api, auth = TikTokEventsApi(), TikTokAuth()
    api.ROOT = url + "/open_api/"
    events = [build(raw) for raw in data.events(count, unique_customers=True)]
    started = time.perf_counter()
    if bulk:
        for start in range(0, count, 1000):
            api.post_events_in_bulk(events[start:start + 1000], auth)
    else:
        for event in events:
            api.post_event(event, auth)
    return time.perf_counter() - started


def official(url, count):
    import hashlib

    import business_api_client
    from business_api_client.api.event_callback_api import EventCallbackApi
    from business_api_client.models.pixel_context import PixelContext
    from business_api_client.models.pixel_context_user import PixelContextUser
    from business_api_client.models.pixel_track_body import PixelTrackBody

    config = business_api_client.Configuration()
    config.host = url
    api = EventCallbackApi(business_api_client.ApiClient(config))
    sha = lambda v: hashlib.sha256(v.strip().lower().encode()).hexdigest()  # noqa: E731
    started = time.perf_counter()
    for raw in data.events(count, unique_customers=True):
        user = raw["user"]
        body = PixelTrackBody(pixel_code=PIXEL, event="CompletePayment", event_id=raw["event_id"],
                              context=PixelContext(user=PixelContextUser(
                                  email=sha(user["email"]), external_id=sha(user["external_id"]))))
        api.pixel_track(TOKEN, body=body)
    return time.perf_counter() - started


if __name__ == "__main__":
    client, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if client == "official_sdk":
        print(official(url, count))
    else:
        print(pytt(url, count, bulk=client == "pytt_bulk"))
