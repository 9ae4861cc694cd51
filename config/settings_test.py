"""Test settings: the real settings with a fast hasher, locmem cache and in-memory layer."""

import os

from config.settings import *  # noqa: F403

# The suite's concurrency tests run many threads in one process, each holding its own
# connection for the length of a test: persistent connections, not a bounded pool, unless a
# run asks for the pool explicitly (the production servers the end-to-end tests start use it).
_default = DATABASES["default"]  # noqa: F405
if "pool" in _default.get("OPTIONS", {}) and "DATABASE_POOL" not in os.environ:
    del _default["OPTIONS"]["pool"]
    _default["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "60"))

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
