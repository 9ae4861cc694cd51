"""The API keys this process has authenticated lately, so a request costs no key lookup.

Every API request authenticates; looking its key up (one query joining the key, its
organization, user and service account) was about a sixth of a worker report's cost. A key
found live is kept here, by digest, for ``API_KEY_CACHE_SECONDS`` (default 5; 0 turns the
cache off). Unknown and revoked keys are never kept: they are looked up every time.

What this changes for revocation: in the process that revokes a key (the admin, a
management command) it stops working at once, as do keys of a user deactivated or an
organization deleted there; in every other server process within ``API_KEY_CACHE_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save

if TYPE_CHECKING:
    from flowplatform.models import ApiKey

MAX_KEYS = 10_000

_keys: dict[str, tuple[float, ApiKey]] = {}
_lock = threading.Lock()


def ttl() -> float:
    return float(getattr(settings, "API_KEY_CACHE_SECONDS", 5))


def get(digest: str) -> ApiKey | None:
    """The live key with this digest, if this process found it within the TTL."""
    found = _keys.get(digest)
    if found is None:
        return None
    expires, key = found
    if time.monotonic() >= expires:
        _keys.pop(digest, None)
        return None
    return key


def put(digest: str, key: ApiKey) -> None:
    seconds = ttl()
    if seconds <= 0:
        return
    with _lock:
        if len(_keys) >= MAX_KEYS:
            _keys.clear()  # a burst of distinct keys: start again rather than grow
        _keys[digest] = (time.monotonic() + seconds, key)


def forget(digest: str | None = None) -> None:
    """Drop one key (its digest), or every key: the next request looks them up again."""
    with _lock:
        if digest is None:
            _keys.clear()
        else:
            _keys.pop(digest, None)


def forget_all(**_: object) -> None:
    """Signal receiver: a key, user, membership, service account or organization changed or
    went away in this process."""
    forget()


def connect_signals() -> None:
    """Called once the app registry is ready (``FlowplatformConfig.ready``)."""
    # The models are imported here: this module is imported while the apps load, before
    # models may be.
    from flowplatform.models import ApiKey, Membership, Organization, ServiceAccount

    for model in (ApiKey, Organization, ServiceAccount, Membership, get_user_model()):
        post_save.connect(forget_all, sender=model, dispatch_uid=f"keycache.{model.__name__}")
        post_delete.connect(forget_all, sender=model, dispatch_uid=f"keycache.d.{model.__name__}")
