"""`tiktok-gateway transform`: many inbound events to 2.0 request bodies, with verdicts.

The command streams: events are read one JSON Lines line at a time (or from one parsed JSON
document, each dropped once transformed), and each request body is written out as soon as
it is full, so a large file is never held twice. Output is orjson's: compact when piped,
indented on a terminal or with `--pretty`.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Iterator
from typing import IO, Any

import orjson

from ..events import split_events
from ..exceptions import FieldError, InvalidEvent
from ..pipeline import RequestPacker, Transformed, TransformOptions, transform


class NotJSON(ValueError):
    """The whole input is not JSON; the message says at which line and column."""


def write_transform(
    source: IO[bytes],
    out: IO[bytes],
    options: TransformOptions,
    *,
    pixel_id: str,
    test_event_code: str | None = None,
    partner_name: str | None = "tiktok-gateway",
    event_source: str = "web",
) -> int:
    """Transform what `source` holds and write the compact result to `out` as it goes;
    the number of rejected events. NotJSON when a one-document input does not parse."""
    now = time.time()
    packer = RequestPacker(pixel_id, test_event_code=test_event_code,
                           partner_name=partner_name, event_source=event_source)
    rejected: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    events = read_events(source)  # parses the first line or document before a byte goes out
    first = next(events, None)
    # The parsed input lives until the end: out of the cycle collector's sight, it is not
    # walked again and again as the transformed events are made (a third of the run's time).
    gc.freeze()
    out.write(b'{"requests":[')
    written = 0
    for index, raw in enumerate(() if first is None else itertools.chain([first], events)):
        if isinstance(raw, _BadLine):
            rejected.append({"index": index, "errors": [raw.error.as_dict()]})
            continue
        item = _transform_one(raw, index, options, now, rejected, warnings)
        full = packer.add(item) if item is not None else None
        if full is not None:
            out.write(b"," * bool(written) + packer.body_bytes(full))
            written += 1
    for rest in packer.finish():
        out.write(b"," * bool(written) + packer.body_bytes(rest))
        written += 1
    out.write(b'],"rejected":' + orjson.dumps(rejected) + b',"warnings":'
              + orjson.dumps(warnings) + b"}\n")
    return len(rejected)


def _transform_one(raw: Any, index: int, options: TransformOptions, now: float,
                   rejected: list[dict[str, Any]], warnings: list[dict[str, Any]]
                   ) -> Transformed | None:
    try:
        item = transform(raw, options, now=now)
    except InvalidEvent as exc:
        rejected.append({"index": index, "errors": [e.as_dict() for e in exc.errors]})
        return None
    warnings.extend({"index": index, **w.as_dict()} for w in item.warnings)
    return item


class _BadLine:
    """A JSON Lines line that does not parse, or holds no events: rejected like an invalid
    event, so that one bad line does not cost the lines around it."""

    def __init__(self, line: int, error: FieldError) -> None:
        self.error = FieldError(error.field, f"line {line}: {error.message}")


def read_events(source: IO[bytes]) -> Iterator[Any]:
    """The raw events of a JSON document (one event, a list, `{"events": [...]}`) or of JSON
    Lines (one of those per line), read line by line when it is JSON Lines."""
    first = source.readline()
    try:
        head = orjson.loads(first) if first.strip() else None
    except orjson.JSONDecodeError:
        head = None
    if head is None:  # a document over several lines (or nothing): parse it whole
        yield from _one_document(first + source.read())
        return
    yield from _drain(split_events(head))
    for number, line in enumerate(source, start=2):
        if not line.strip():
            continue
        try:
            events = split_events(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            yield _BadLine(number, FieldError("", f"not valid JSON: {exc.msg}"))
            continue
        except InvalidEvent as exc:
            yield _BadLine(number, exc.errors[0])
            continue
        yield from _drain(events)


def _one_document(text: bytes) -> Iterator[Any]:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotJSON(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    del text  # only the parsed events are held from here on
    yield from _drain(split_events(payload))


def _drain(events: list[Any]) -> Iterator[Any]:
    """Each event, its slot emptied as it goes, so transformed events can be freed."""
    for index in range(len(events)):
        raw, events[index] = events[index], None
        yield raw
