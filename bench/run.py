"""`make bench`: every benchmark, one run, results in bench/results/latest.{json,md}."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import delivery, ingest, memory, procs, transform, validation

RESULTS = Path(__file__).with_name("results")
TARGETS = {
    "transform_vs_pytt": 10.0, "transform_funnel_vs_pytt": 20.0, "transform_floor_ratio": 4.0,
    "delivery_vs_per_event": 50.0, "ingest_single_share": 0.35, "ingest_batch_events_per_second": 20_000.0,
    "memory_peak_mb": 150.0,
}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform()}


def main() -> None:
    size = int(os.environ.get("BENCH_EVENTS", "20000"))
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    previous = RESULTS / "latest.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if only else {}
    results.update({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": machine(), "versions": procs.versions(), "targets": TARGETS})
    for name, run in (("transform", lambda: transform.run(size)),
                      ("validation", lambda: validation.run(size)),
                      ("delivery", lambda: delivery.run(size)), ("ingest", ingest.run),
                      ("memory", lambda: memory.run(int(os.environ.get("BENCH_MEMORY_EVENTS",
                                                                        "10000000"))))):
        if only and name not in only:
            continue
        print(f"running {name}…", file=sys.stderr, flush=True)
        results[name] = run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(results))
    print(markdown(results))


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _validation(v: dict[str, Any] | None) -> list[str]:
    """Our validation against msgspec's typed decoding, with both answers to bad events."""
    if not v:
        return []
    lines = ["### Validating an inbound event, from bytes", "",
             f"orjson + pydantic-core (ours): {v['ours_us_per_event']} µs per funnel event; "
             f"msgspec's typed decoding of the same shape (a lower bound: no coercions, no "
             f"event-time or currency rules): {v['msgspec_us_per_event']} µs.", "",
             "| bad event | ours | msgspec |", "|---|---|---|"]
    for row in v["errors"]:
        cells = (row["event"], row["ours"], row["msgspec"])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines + [""]


def _second_process(i: dict[str, Any]) -> list[str]:
    """What `serve --workers 2` on PostgreSQL gives over one process, row by row."""
    pairs = [(f"postgres_{row}", f"postgres_2_processes_{row}", label) for row, label in
             (("single", "single events"), ("batch_100", "batches of 100"),
              ("batch_100_new_customers", "batches of 100, every customer new"))]
    ratios = [f"{label} {i[two]['events_per_second'] / i[one]['events_per_second']:.2f}×"
              for one, two, label in pairs if one in i and two in i]
    if not ratios:
        return []
    return ["Two processes on PostgreSQL against one (`serve --workers 2`, wrk and the TikTok "
            "stand-in on the same 2 cores): " + ", ".join(ratios) + ".", ""]


def markdown(r: dict[str, Any]) -> str:
    t, d, i, m = r["transform"], r["delivery"], r["ingest"], r["memory"]
    f, u = t["funnel"], t["unique_customers"]
    lines = [
        f"# Benchmarks ({r['date']})", "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, "
        f"{r['machine']['system']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items()) + ".", "",
        "## Transform (events per second, one core)", "",
        "| events | tiktok-gateway | floor (3 × SHA-256 + JSON) | pytt-events-api | vs pytt | floor ÷ ours |",
        "|---|---|---|---|---|---|",
        f"| shop funnel (4 events per customer) | {f['ours']:,.0f} | {f['floor']:,.0f} | "
        f"{f['pytt_events_api']:,.0f} | {f['ours_vs_pytt']}× | {f['floor_vs_ours']}× |",
        f"| every event a new customer | {u['ours']:,.0f} | {u['floor']:,.0f} | "
        f"{u['pytt_events_api']:,.0f} | {u['ours_vs_pytt']}× | {u['floor_vs_ours']}× |",
    ]
    c = t.get("cli_unique_purchases")
    if c:
        lines.append(f"| `tiktok-gateway transform` on a file of purchases, each a new customer "
                     f"(process start included) | {c['ours']:,.0f} | | {c['pytt_events_api']:,.0f} "
                     f"| {c['ours_vs_pytt']}× | |")
    lines += [
        "",
        f"Targets: ≥ 10× pytt-events-api on both workloads (funnel "
        f"{_mark(f['ours_vs_pytt'] >= 10)}, new customers {_mark(u['ours_vs_pytt'] >= 10)}"
        + (f", the CLI {_mark(c['ours_vs_pytt'] >= 10)}" if c else "")
        + f"), ≥ 20× on the funnel ({_mark(f['ours_vs_pytt'] >= 20)}), within 4× of the "
        f"floor on the funnel ({_mark(f['floor_vs_ours'] <= 4)}).", "",
        *_validation(r.get("validation")),
        f"## Delivery ({d['events']:,} events to the sandbox)", "",
        "| client | seconds | events per second | received |", "|---|---|---|---|",
    ]
    for name, label in (("ours", "tiktok-gateway dispatcher (batches of 1,000)"),
                        ("pytt_bulk", "pytt-events-api, post_events_in_bulk (pixel/batch)"),
                        ("official_sdk", "TikTok official SDK, pixel_track per event"),
                        ("pytt_single", "pytt-events-api, post_event per event")):
        row = d[name]
        lines.append(f"| {label} | {row['seconds']} | {row['events_per_second']:,.0f} | "
                     f"{row['received']:,} |")
    lines += ["", f"Ours vs per-event clients: {d['ours_vs_pytt_single']}× pytt, "
              f"{d['ours_vs_official_sdk']}× the official SDK; vs pytt's bulk call "
              f"{d['ours_vs_pytt_bulk']}×. The dispatcher's own CPU: "
              f"{d.get('dispatcher_cpu_us_per_event', '?')} µs per event"
              + (f"; the sandbox's (parse, lint, record): {d['sandbox_cpu_us_per_event']} µs per "
                 "event received" if "sandbox_cpu_us_per_event" in d else "") + ".", ""]
    if "instant_ours" in d:
        instant = min(d["instant_ours_vs_pytt_single"], d["instant_ours_vs_official_sdk"])
        lines += ["Against an instant TikTok stand-in (code 0 without parsing; received counts "
                  "requests):", "", "| client | seconds | events per second | requests |",
                  "|---|---|---|---|"]
        for name, label in (("ours", "tiktok-gateway dispatcher"),
                            ("pytt_bulk", "pytt-events-api, post_events_in_bulk"),
                            ("official_sdk", "TikTok official SDK, per event"),
                            ("pytt_single", "pytt-events-api, per event")):
            row = d[f"instant_{name}"]
            lines.append(f"| {label} | {row['seconds']} | {row['events_per_second']:,.0f} | "
                         f"{row['received']:,} |")
        lines += ["", f"Ours vs per-event clients: {d['instant_ours_vs_pytt_single']}× pytt, "
                  f"{d['instant_ours_vs_official_sdk']}× the official SDK (target 50×: "
                  f"{_mark(instant >= 50)}); the dispatcher's own CPU "
                  f"{d['instant_dispatcher_cpu_us_per_event']} µs per event (target ≤ 5: "
                  f"{_mark(d['instant_dispatcher_cpu_us_per_event'] <= 5)}).", ""]
    lines += [
              "## Ingest (wrk, 2 threads, 32 connections, "
              f"{i['duration']}, durable acknowledgement)", "",
              "| endpoint | requests/s | events/s | p50 ms | p99 ms | non-2xx |",
              "|---|---|---|---|---|---|"]
    for name, label in (("bare_asgi_single", "bare Starlette endpoint (ceiling)"),
                        ("gateway_single", "POST /v1/events, 1 event"),
                        ("gateway_batch_100", "POST /v1/events, 100 events, repeat customers"),
                        ("gateway_batch_100_new_customers",
                         "POST /v1/events, 100 events, every customer new"),
                        ("postgres_single", "POST /v1/events, 1 event, on PostgreSQL"),
                        ("postgres_batch_100", "POST /v1/events, 100 events, on PostgreSQL"),
                        ("postgres_batch_100_new_customers",
                         "POST /v1/events, 100 events, every customer new, on PostgreSQL"),
                        ("postgres_2_processes_single",
                         "POST /v1/events, 1 event, PostgreSQL, `serve --workers 2`"),
                        ("postgres_2_processes_batch_100",
                         "POST /v1/events, 100 events, PostgreSQL, `serve --workers 2`"),
                        ("postgres_2_processes_batch_100_new_customers",
                         "POST /v1/events, 100 events, every customer new, PostgreSQL, "
                         "`serve --workers 2`")):
        row = i.get(name)
        if row is None:
            continue
        lines.append(f"| {label} | {row['requests_per_second']:,.0f} | "
                     f"{row['events_per_second']:,.0f} | {row['p50_ms']} | {row['p99_ms']} | "
                     f"{row['non_2xx']} |")
    batch = i["gateway_batch_100"]["events_per_second"]
    lines += ["", f"Single events: {i['single_share_of_ceiling']:.0%} of the ceiling (target "
              f"35%: {_mark(i['single_share_of_ceiling'] >= 0.35)}; the long goal is 50%); "
              f"batched: {batch:,.0f} events/s with repeat customers"
              + (f", {i['gateway_batch_100_new_customers_events_per_bare_request']} events per "
                 "bare request with every customer new (target 2: "
                 f"{_mark(i['gateway_batch_100_new_customers_events_per_bare_request'] >= 2)})"
                 if "gateway_batch_100_new_customers_events_per_bare_request" in i else "")
              + ". The targets are for the "
              "default store, SQLite, on one process; PostgreSQL is the store for several "
              "processes"
              + (f" (not measured: {i['postgres_not_measured']})" if "postgres_not_measured" in i
                 else "") + ".", "", *_second_process(i),
              f"## Memory and disk ({m['events']:,} events waiting while TikTok is down)", "",
              f"Peak RSS while waiting: {m['peak_rss_mb_while_waiting']} MB; while draining: "
              f"{m['peak_rss_mb_while_draining']} MB (target < 150 MB: "
              f"{_mark(max(m['peak_rss_mb_while_waiting'], m['peak_rss_mb_while_draining']) < 150)}"
              f"). Ingest took {m['ingest_seconds']} s"
              + (f" ({m['ingest_events_per_second']:,} events/s, two clients, batches of 1,000);"
                 f" on disk: {m['disk_mb']:,} MB, {m['disk_bytes_per_waiting_event']} bytes per "
                 "waiting event (SQLite file and its write-ahead log)"
                 if "disk_bytes_per_waiting_event" in m else "")
              + f". Draining for {m['drain_seconds']} s delivered {m['delivered']:,}"
              + (f" ({m['drain_events_per_second']:,} events/s)"
                 if "drain_events_per_second" in m else "") + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
