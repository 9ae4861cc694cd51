"""Helpers of the browser tests: the running stack and API shortcuts (user key)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"


@dataclass
class Stack:
    url: str
    user_key: str  # another member of the organization: "someone else" in the tests
    logs: Path

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.user_key}"}, timeout=10
        )


def create_flow(stack: Stack, definition: dict[str, Any], name: str) -> str:
    with stack.api() as api:
        response = api.post("/api/flows", json={"display_name": name, "definition": definition})
        assert response.status_code == 201, response.text
        return response.json()["id"]


def start_execution(stack: Stack, flow_id: str, input: Any = None) -> str:  # noqa: A002
    with stack.api() as api:
        response = api.post("/api/flow-executions", json={"flow_id": flow_id, "input": input})
        assert response.status_code == 201, response.text
        return response.json()["id"]


def wait_for_execution(stack: Stack, execution_id: str, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    with stack.api() as api:
        while True:
            body = api.get(f"/api/flow-executions/{execution_id}").json()
            if body.get("status") == status:
                return body
            assert time.monotonic() < deadline, f"execution stayed {body.get('status')}"
            time.sleep(0.2)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
