from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


def _reset_layers():
    from channels.layers import channel_layers

    channel_layers.backends.clear()


def test_readyz_ok(anon_client):
    response = anon_client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_503_when_channel_layer_unreachable(anon_client):
    _reset_layers()
    try:
        with override_settings(CHANNEL_LAYERS=DEAD_REDIS):
            _reset_layers()
            ready = anon_client.get("/readyz")
            live = anon_client.get("/healthz")
    finally:
        _reset_layers()
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["channel_layer"].startswith("error")
    assert live.status_code == 200 and live.json()["status"] == "degraded"


def _sample(text: str, prefix: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_counters_move_after_traffic(anon_client, user_client):
    before = anon_client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    for _ in range(3):
        user_client.get("/api/me")
    after = anon_client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    prefix = 'flowplatform_http_requests_total{method="GET",route="/api/me",status="200"}'
    assert _sample(after, prefix) == _sample(before, prefix) + 3
    assert "flowplatform_flow_executions" in after
    assert "flowplatform_queued_tasks" in after


def test_metrics_refused_outside_allowed_networks(anon_client):
    assert anon_client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


@override_settings(METRICS_TOKEN="s3cret")
def test_metrics_token(anon_client):
    assert anon_client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    ok = anon_client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret", REMOTE_ADDR="203.0.113.9")
    assert ok.status_code == 200
