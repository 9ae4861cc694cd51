"""Fixtures for the browser pages' view tests: session clients of two organizations."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def page_client(tenant) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(tenant.user)
    return client


@pytest.fixture
def outsider_page_client(outsider) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(outsider.user)
    return client
