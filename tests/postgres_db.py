"""Real PostgreSQL for tests, made cheap: one migrated template, one copy per test.

Set TEST_POSTGRES_DSN (e.g. postgresql://postgres@127.0.0.1:5432/test) to run these tests;
without it they skip with that reason. CI sets it and fails on any skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest

TEMPLATE = "tiktok_gateway_template"


def admin_dsn() -> str:
    dsn = os.environ.get("TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_DSN to run this test")
    return dsn


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _execute(dsn: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database with the current schema, copied for each test."""
    dsn = admin_dsn()
    from tiktok_gateway.outbox.postgres import migrate

    _execute(dsn, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE}")
    # Its own thread and loop: this fixture may be set up from inside a running test loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(migrate(with_database(dsn, TEMPLATE)))).result()
    yield dsn
    _execute(dsn, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = f"tiktok_gateway_test_{uuid.uuid4().hex[:12]}"
    _execute(postgres_template, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield with_database(postgres_template, name)
    _execute(postgres_template, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
