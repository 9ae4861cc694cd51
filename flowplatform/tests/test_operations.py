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


def _production_database_settings(**environ: str) -> dict:
    """``DATABASES["default"]`` as ``config.settings`` builds it from ``environ``."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_POOL", "CONN_MAX_AGE"}}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", **environ)
    code = (
        "import json, django; django.setup(); from django.conf import settings;"
        "db = settings.DATABASES['default'];"
        "print(json.dumps({'age': db['CONN_MAX_AGE'], 'pool': db['OPTIONS'].get('pool')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.django_db(False)
def test_postgresql_uses_a_connection_pool_by_default_and_persistent_connections_on_request():
    url = "postgres://app:secret@127.0.0.1:5432/flowplatform"
    assert _production_database_settings(DATABASE_URL=url) == {
        "age": 0,
        "pool": {"min_size": 1, "max_size": 10},
    }
    assert _production_database_settings(DATABASE_URL=url, DATABASE_POOL_SIZE="4")["pool"] == {
        "min_size": 1,
        "max_size": 4,
    }
    assert _production_database_settings(
        DATABASE_URL=url, DATABASE_POOL="false", CONN_MAX_AGE="30"
    ) == {"age": 30, "pool": None}


def test_workers_freeze_what_loading_the_application_allocated(monkeypatch):
    """``post_worker_init``: a worker's garbage collector no longer scans the objects that
    live as long as the process (full collections paused workers for tens of ms), and its
    interpreter hands the GIL over every millisecond unless told otherwise."""
    import gc
    import sys

    from config import gunicorn_conf

    interval = sys.getswitchinterval()
    assert gc.get_freeze_count() == 0
    try:
        monkeypatch.delenv("PYTHON_SWITCH_INTERVAL", raising=False)
        gunicorn_conf.post_worker_init(None)
        assert gc.get_freeze_count() > 10_000
        assert sys.getswitchinterval() == pytest.approx(0.001)
        monkeypatch.setenv("PYTHON_SWITCH_INTERVAL", "0.002")
        gunicorn_conf.post_worker_init(None)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
