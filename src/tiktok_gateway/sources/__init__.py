"""Where events come from besides POST /v1/events: the browser, GA4 and shop webhooks.

Each source only turns its platform's format into the gateway's inbound event; the same
pipeline (filters, mapping, hashing, dedup, outbox) does the rest.
"""
