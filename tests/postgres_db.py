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

import pytest

from tiktok_gateway.testing import fresh_database, run_sql, with_database

TEMPLATE = "tiktok_gateway_template"


def admin_dsn() -> str:
    dsn = os.environ.get("TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("PostgreSQL not configured: set TEST_POSTGRES_DSN to run this test")
    return dsn


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database with the current schema, copied for each test."""
    dsn = admin_dsn()
    from tiktok_gateway.outbox.postgres import migrate

    with fresh_database(dsn, TEMPLATE) as template:
        # Its own thread and loop: this fixture may be set up from inside a running test loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(migrate(template))).result()
        yield dsn


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = f"tiktok_gateway_test_{uuid.uuid4().hex[:12]}"
    run_sql(postgres_template, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield with_database(postgres_template, name)
    run_sql(postgres_template, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
