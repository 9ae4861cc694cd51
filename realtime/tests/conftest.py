"""Fixtures for realtime tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.db import connections

from executions.models import Flow, FlowExecution
from realtime import sender as sender_module
from realtime.tests.factories import make_execution, make_flow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_channel_layers() -> Iterator[None]:
    """Each test gets a new layer instance and no background sender left from another."""
    channel_layers.backends.clear()
    sender_module._sender = None
    yield
    if sender_module._sender is not None:
        sender_module._sender.stop(timeout=1)
        sender_module._sender = None
    channel_layers.backends.clear()


@pytest.fixture
async def close_thread_connections() -> Any:
    """Close the DB connections the sync_to_async worker thread opened (PostgreSQL keeps
    them open, which would block flushing and dropping the test database)."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def flow(tenant) -> Flow:  # noqa: ANN001
    return make_flow(tenant.organization)


@pytest.fixture
def execution(flow: Flow) -> FlowExecution:
    return make_execution(flow)


@pytest.fixture
def foreign_flow(outsider) -> Flow:  # noqa: ANN001
    return make_flow(outsider.organization, name="theirs")
